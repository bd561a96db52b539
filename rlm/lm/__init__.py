"""The only code that talks to models: client, batching, limiter, usage."""
