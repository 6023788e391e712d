"""Each backend's own tests run in that backend's environment (``make test BACKEND=...``).

The two backends never share an environment, so the other backend's module cannot even be
imported here: it is left out of collection on purpose (CI runs the suite on both), not
skipped at run time.
"""

from pathlib import Path
from typing import Any

import pytest

from llama_entra.backends import active_backend

_OWN_TESTS = {
    "llama-stack": [
        "test_llama_stack_backend.py",
        "test_llama_stack_direct.py",
        "test_llama_stack_http.py",
        "test_llama_stack_server_wrapper.py",
    ],
    "ogx": ["test_ogx_backend.py"],
}

collect_ignore = [
    name
    for backend, names in _OWN_TESTS.items()
    if backend != active_backend().name
    for name in names
]


@pytest.fixture
def azure_adapter(tmp_path: Path) -> Any:
    """llama-stack 0.7.3's real ``remote::azure`` adapter with a static key and its own CA
    bundle in ``network`` (imported here: only that backend's tests ask for it)."""
    import trustme
    from llama_stack.providers.remote.inference.azure.azure import AzureInferenceAdapter
    from llama_stack.providers.remote.inference.azure.config import AzureConfig

    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    config = AzureConfig(
        base_url="https://resource.example/openai/v1",
        api_key="static-key-for-the-test",
        network={"tls": {"verify": str(ca)}},
    )
    adapter = AzureInferenceAdapter(config=config)
    object.__setattr__(adapter, "get_request_provider_data", lambda: None)  # no request here
    return adapter
