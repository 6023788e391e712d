"""llama-entra: Llama Stack on Azure OpenAI with lazy Entra ID authentication."""
