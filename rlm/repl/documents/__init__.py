"""Documents as people have them: PDF, Word, PowerPoint, Excel, HTML, EPUB and notebooks as text.

Read where root code runs (the sandbox kernel, or this process for ``sandbox="local"``),
each file in a worker process bounded in time and memory (``worker``); never in the host
of a kernel sandbox. Copied into each kernel's run directory as the package
``_rlm_documents``: its modules import only each other, the standard library, and the
readers' libraries (pypdfium2, selectolax, lxml) when a file needs them.

- ``formats``: which reader a file needs, from its name and first bytes;
- ``pdf``, ``markup`` (HTML), ``office`` (DOCX, PPTX, XLSX), ``ebook`` (EPUB),
  ``notebook`` (ipynb): the readers, each ``bytes -> dict``;
- ``document``: ``Document``, the ``str`` root code gets, with its pages;
- ``load``: a context's files read and described; ``describe``: what the root is told.
"""
