"""The web dashboard: a read-only FastAPI app over the results store (raymtl.results), its page
and bundled chart code in static/, served by uvicorn (`raymtl dashboard RUN`)."""
