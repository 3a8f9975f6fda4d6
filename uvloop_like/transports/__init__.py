"""The asyncio Transport faces of libuv handles."""
