"""The client holder and what builds its Llama Stack client.

- ``holder``: ``ClientHolder``, the one place that calls Llama Stack for inference; it adds the
  Entra token (and other provider data) to each call and never rebuilds the client.
- ``resources``: which copy of a model serves each Azure OpenAI resource of a model on several
  (``azure_entra_id.endpoints``); ``models``: ``ModelInfo``.
- ``admission``: new Azure calls wait their turn while the worker's event loop lags.
- ``build``: builds the client once at start-up (library mode: the enriched run config in
  process; service mode: a client for the server), keeps the in-process stack running, and
  prepares a server's tables (``create_server_tables``).
"""

from llama_entra.stack.admission import Admission
from llama_entra.stack.holder import AZURE_PROVIDER_TYPE, ClientHolder
from llama_entra.stack.models import ModelInfo

__all__ = ["AZURE_PROVIDER_TYPE", "Admission", "ClientHolder", "ModelInfo"]
