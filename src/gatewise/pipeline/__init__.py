"""The chain every request runs through: `Call`, `Middleware`, `build_chain`, `ChunkStream`
and the terminal `ProviderCall` (see core.py for the order). The middleware themselves live
with their concerns (`resilience/`, `routing/`, `accounting/`, ...), above this package."""
