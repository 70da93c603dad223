"""Informers in asyncio, with client-go tools/cache semantics."""
