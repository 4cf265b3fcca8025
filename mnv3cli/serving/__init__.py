"""Layer 5: ``mnv3 serve``'s HTTP service: the FastAPI app, dynamic batching, metrics, uvicorn.

Needs the ``serve`` extra (FastAPI, uvicorn, prometheus-client, python-multipart); names resolve
lazily, so importing this package costs nothing and fails only when a name is used without them.
"""

from .._lazy import lazy_exports

# The serve extra: import name -> distribution, checked by the CLI to say what to install.
REQUIRED_MODULES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "prometheus_client": "prometheus-client",
    "python_multipart": "python-multipart",
    "orjson": "orjson",
    "fastapi_offline": "fastapi-offline",
}

API_KEY_ENV = "MNV3_API_KEY"  # an API key in the environment (see .auth); here so the CLI reads it cheaply

__getattr__, _names = lazy_exports(
    __name__,
    {
        "ServeSettings": ".app",
        "create_app": ".app",
        "Batcher": ".batcher",
        "ServerMetrics": ".metrics",
        "ClientError": ".uploads",
        "listen": ".server",
        "serve": ".server",
    },
)
__all__ = ["API_KEY_ENV", "REQUIRED_MODULES", *_names]
