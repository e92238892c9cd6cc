"""The HTTP front (FastAPI): one router per area under routers/, the key check as a dependency,
Pydantic models as the contract. It calls the same services as the CLI and the console."""
