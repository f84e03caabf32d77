"""``mamori serve``: the web door (TAXII 2.1 now; the REST API and console grow the same app)."""

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """Serve the TAXII 2.1 API (and, later, the console) from this process."""
    import uvicorn

    from mamori.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
