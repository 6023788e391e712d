"""Each backend's own tests run in that backend's environment (``make test BACKEND=...``).

The two backends never share an environment, so the other backend's module cannot even be
imported here: it is left out of collection on purpose (CI runs the suite on both), not
skipped at run time.
"""

from llama_entra.backends import active_backend

_OWN_TESTS = {
    "llama-stack": [
        "test_llama_stack_backend.py",
        "test_llama_stack_direct.py",
        "test_llama_stack_http.py",
        "test_llama_stack_server.py",
    ],
    "ogx": ["test_ogx_backend.py"],
}

collect_ignore = [
    name
    for backend, names in _OWN_TESTS.items()
    if backend != active_backend().name
    for name in names
]
