"""Images for sub-calls, offline: the header parser, the caps and their messages, the bridge codec,
OpenAI's image-token rule, and how endpoints' refusals are recognised."""

from __future__ import annotations

import base64
import random
import struct

import pytest

from rlm import ImagesRefused, LMResponseError
from rlm.lm import images
from rlm.lm.images import ImageError, check, check_batch, header
from rlm.lm.retry import RetryPolicy
from rlm.lm.vision import checked, image_tokens, keyed, refusal, user_message
from rlm.repl import checks
from rlm.testing.images import jpeg, png


def _url(data: bytes, mime: str = "png") -> str:
    return f"data:image/{mime};base64,{base64.b64encode(data).decode()}"


def test_sizes_come_from_the_headers_of_real_files():
    assert header(png(1275, 1650)) == ("png", 1275, 1650)
    assert header(jpeg(1275, 1650)) == ("jpeg", 1275, 1650)
    assert header(jpeg(13, 7)) == ("jpeg", 13, 7)


def test_a_jpeg_frame_header_is_found_after_exif_and_fill_bytes_and_in_progressive_files():
    exif = b"\xff\xe1" + struct.pack(">H", 60_002) + b"E" * 60_000  # an APP1 block as big as cameras write
    data = jpeg(640, 480)
    assert header(data[:2] + exif + b"\xff\xff" + data[2:]) == ("jpeg", 640, 480)
    progressive = data.replace(b"\xff\xc0", b"\xff\xc2", 1)
    assert header(progressive) == ("jpeg", 640, 480)


@pytest.mark.parametrize(("data", "says"), [
    (png()[:20], "truncated or corrupt"),
    (jpeg()[:30], "truncated or corrupt"),
    (b"\xff\xd8\xff\xd9", "truncated or corrupt"),
    (b"GIF89a" + b"\0" * 20, "convert the image to PNG or JPEG"),
    (b"RIFF\0\0\0\0WEBPVP8 ", "convert the image to PNG or JPEG"),
    (b"%PDF-1.5\n", "not a PNG or JPEG"),
    (png(10, 10).replace(struct.pack(">II", 10, 10), struct.pack(">II", 0, 10), 1), "each side must be"),
    (png(10, 10).replace(struct.pack(">II", 10, 10), struct.pack(">II", 2**31 - 1, 10), 1), "each side must be"),
])
def test_what_is_not_a_readable_png_or_jpeg_is_refused_saying_why(data, says):
    with pytest.raises(ImageError, match=says):
        header(data)


def test_a_jpeg_of_endless_segments_is_refused_after_a_bounded_walk():
    segment = b"\xff\xe2" + struct.pack(">H", 4) + b"xx"
    with pytest.raises(ImageError, match="frame header"):
        header(b"\xff\xd8" + segment * 100_000 + jpeg()[2:])


def test_fuzzed_headers_raise_only_image_errors():
    rand = random.Random(7)
    seeds = [png(33, 21), jpeg(33, 21)]
    for _ in range(3000):
        data = bytearray(rand.choice(seeds))
        for _ in range(rand.randint(1, 6)):
            data[rand.randrange(min(len(data), 200))] = rand.randrange(256)
        data = data[: rand.randint(0, len(data))]
        try:
            fmt, width, height = header(bytes(data))
        except ImageError:
            continue
        assert fmt in ("png", "jpeg") and 0 < width <= images.MAX_SIDE and 0 < height <= images.MAX_SIDE


def test_images_may_be_bytes_like_or_data_urls_one_or_a_list():
    one = png()
    assert check(one) == [one]
    assert check(bytearray(one)) == [one] and check(memoryview(one)) == [one]
    assert check([one, _url(jpeg(), "jpeg"), _url(jpeg(), "jpg")]) == [one, jpeg(), jpeg()]
    assert check(None) == [] and check([]) == []


@pytest.mark.parametrize(("value", "says"), [
    ("page.png", "got a str 'page.png'; pass PNG or JPEG bytes (e.g. page_image(n)"),
    ("https://example.org/a.png", "never fetched"),
    (_url(jpeg(), "png"), "says image/png holds a JPEG"),
    ("data:image/png;base64,!!!", "base64 is malformed"),
    (3, "takes a list of images, not int"),
    ([3], "image 0: an image must be bytes or a data: URL, not int"),
    ([png(), b"not an image"], "image 1: the bytes are not a PNG or JPEG"),
])
def test_a_bad_image_is_refused_with_what_to_pass_instead(value, says):
    with pytest.raises(ImageError, match=says.replace("(", r"\(").replace(")", r"\)")):
        check(value)


def test_a_pil_image_is_refused_with_how_to_get_its_bytes():
    class PILImage:
        def save(self, fp: object, fmt: str) -> None: ...

    with pytest.raises(ImageError, match=r"img.save\(buf, 'PNG'\)"):
        check([PILImage()])


def test_caps_on_an_image_and_a_call_say_what_to_do():
    big = png() + b"\0" * images.MAX_IMAGE_BYTES
    with pytest.raises(ImageError, match=r"over the 20 MiB limit per image; render or save it smaller"):
        check([big])
    nearly = png() + b"\0" * (18 * 2**20)
    with pytest.raises(ImageError, match=r"50 MiB limit; spread them over several calls"):
        check([nearly, nearly, nearly])
    with pytest.raises(ImageError, match=f"{images.MAX_IMAGES + 1} images in one sub-call is over the limit"):
        check([png()] * (images.MAX_IMAGES + 1))


def test_a_batch_takes_one_entry_per_prompt_and_keeps_a_bad_entry_in_its_slot():
    entries = check_batch([[png()], png(), None, [b"nope"], []], 5)
    assert entries is not None
    assert entries[0] == [png()] and entries[1] == [png()] and entries[2] == [] and entries[4] == []
    assert isinstance(entries[3], ImageError) and "item 3: image 0" in str(entries[3])
    with pytest.raises(TypeError, match="2 entries for 3 prompts"):
        check_batch([[png()], []], 3)
    with pytest.raises(TypeError, match="one entry per prompt"):
        check_batch(png(), 1)


def test_the_repl_checks_detail_and_images_with_the_prompt():
    assert checks.check_query("p", None, [png()], "low") == [png()]
    with pytest.raises(ValueError, match=r"detail=\.\.\.\) takes 'low', 'high', 'auto' or None"):
        checks.check_query("p", None, [png()], "ultra")
    with pytest.raises(TypeError, match="takes a string"):
        checks.check_query(b"p", None, [png()])


def test_the_bridge_codec_round_trips_and_the_host_decodes_strictly():
    sent = images.encode_batch([[png(), jpeg()], ImageError("refused in the REPL: why"), []])
    back = images.decode_batch(sent, 3)
    assert back[0] == [png(), jpeg()] and back[2] == []
    assert isinstance(back[1], ImageError) and "why" in str(back[1])
    with pytest.raises(ImageError, match="malformed"):
        images.decode(["not base64!"])
    with pytest.raises(ImageError, match="not a list"):
        images.decode("aGk=")
    longest = 4 * -(-images.MAX_IMAGE_BYTES // 3)
    with pytest.raises(ImageError, match="at most 20 MiB"):
        images.decode(["A" * (longest + 4)])
    assert isinstance(images.decode_batch([["!!"]], 1)[0], ImageError)  # that item only
    with pytest.raises(TypeError, match="one entry per prompt"):
        images.decode_batch([[]], 2)


@pytest.mark.parametrize(("size", "model", "detail", "tokens"), [
    ((1024, 1024), "gpt-4o", None, 765),  # OpenAI's worked examples
    ((2048, 4096), "gpt-4o", "high", 1105),
    ((4096, 8192), "gpt-4o", "auto", 1105),
    ((1024, 1024), "gpt-4o", "low", 85),
    ((500, 500), "gpt-4.1", None, 255),
    ((513, 500), "gpt-4.1", None, 425),
    ((1024, 1024), "gpt-5", None, 70 + 4 * 140),
    ((1024, 1024), "o3", None, 75 + 4 * 150),
    ((1024, 1024), "gpt-4o-mini", None, 2833 + 4 * 5667),
    ((1024, 1024), "gpt-4.1-mini", None, 1659),  # 1,024 patches x 1.62
    ((1800, 2400), "gpt-4.1-mini", None, 2353),  # scaled down to 1,452 patches x 1.62
    ((1800, 2400), "gpt-5-nano", None, 3572),  # 1,452 x 2.46
    ((1024, 1024), "o4-mini", None, 1762),
    ((1024, 1024), "openai/gpt-4o", None, 765),  # a provider prefix (OpenRouter) is not the model
    ((1024, 1024), "qwen2.5-vl-7b", None, 765),  # unknown: counted as GPT-4o is
])
def test_image_tokens_follow_openais_published_rule(size, model, detail, tokens):
    assert image_tokens(*size, model=model, detail=detail) == tokens


def test_a_sub_call_message_is_a_text_part_then_image_url_parts_and_the_cache_keys_hashes():
    shown = checked([png(), jpeg()])
    message = user_message("what is it?", shown, "low")
    assert message["content"][0] == {"type": "text", "text": "what is it?"}
    urls = [p["image_url"] for p in message["content"][1:]]
    assert urls == [{"url": _url(png()), "detail": "low"}, {"url": _url(jpeg(), "jpeg"), "detail": "low"}]
    assert user_message("plain", [], None) == {"role": "user", "content": "plain"}
    assert "detail" not in user_message("p", shown, None)["content"][1]["image_url"]
    key = keyed([message], shown)
    assert "base64" not in str(key) and shown[0].sha256 in str(key) and shown[1].sha256 in str(key)


@pytest.mark.parametrize(("status", "message"), [
    (400, "Invalid content type. image_url is only supported by certain models."),  # OpenAI
    (400, "At most 0 image(s) may be provided in one request."),  # vLLM serving a text model
    # llama.cpp's server without a projector
    (500, "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"),
    (422, "Failed to deserialize the JSON body: messages[0]: unknown variant `image_url`, expected `text`"),  # DeepSeek
    (400, "llava: this model does not support images"),
])
def test_endpoints_saying_a_model_takes_no_images_become_images_refused(status, message):
    exc = LMResponseError(f"HTTP {status} from the endpoint for m: {message}", status=status, model="m")
    typed = refusal(exc, "text-model")
    assert isinstance(typed, ImagesRefused) and typed.status == status and typed.model == "text-model"
    assert "'text-model' refused the images" in str(typed) and "model=" in str(typed)
    assert not RetryPolicy.retryable(typed)


@pytest.mark.parametrize(("status", "message"), [
    (400, "You uploaded an unsupported image. Please make sure your image is below 20 MB"),
    (429, "Rate limit reached; image input is not supported at this tier"),
    (400, "At most 1 image(s) may be provided in one request."),
    (500, "internal error"),
])
def test_other_errors_stay_what_they_are(status, message):
    assert refusal(LMResponseError(message, status=status), "m") is None
