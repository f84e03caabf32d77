"""``mamori serve``: one process for the console, the REST API, TAXII 2.1 and the decision stream."""

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """Serve the console (/), the REST API (/api/), TAXII 2.1 (/taxii2/) and the CrowdSec
    decision stream (/v1/) from this process."""
    import uvicorn

    from mamori.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
