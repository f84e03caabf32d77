"""Commands of the share stage (mounted by mamori.cli)."""

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True)


# --- TAXII partners, pull, push, publish (share/partners.py, share/client.py) -------------------

partner_app = typer.Typer(no_args_is_help=True, help="Partners of the TAXII 2.1 server.")
app.add_typer(partner_app, name="partner")


def _taxii_fail(exc: Exception) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[red]error[/]: {exc}")
    raise typer.Exit(2)


@partner_app.command("add")
def partner_add(
    name: Annotated[str, typer.Argument(help="Partner name (its TAXII Basic-auth user name).")],
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection", "-c", help="Collection alias it may use (created if new); repeatable."
        ),
    ] = None,
    can_read: Annotated[
        bool, typer.Option("--can-read/--no-can-read", help="May GET objects.")
    ] = True,
    can_write: Annotated[
        bool, typer.Option("--can-write/--no-can-write", help="May POST objects.")
    ] = False,
    open_tlp: Annotated[
        list[str] | None,
        typer.Option(
            "--open-tlp", help="TLPs it gets without being named (default: clear and green)."
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Its TAXII 2.1 API root, for pull/push.")
    ] = None,
    remote_collection: Annotated[
        str | None,
        typer.Option("--remote-collection", help="Collection id or alias on its server."),
    ] = None,
    remote_user: Annotated[
        str | None, typer.Option("--remote-user", help="Our user there.")
    ] = None,
    remote_password: Annotated[
        str | None,
        typer.Option(
            "--remote-password", envvar="MAMORI_REMOTE_PASSWORD", help="Our password there."
        ),
    ] = None,
) -> None:
    """Register a partner; its credential is printed once and only its hash is kept."""
    from mamori.share import partners
    from mamori.store import Store

    try:
        secret = partners.add(
            Store(),
            name,
            collection or [],
            can_read=can_read,
            can_write=can_write,
            open_tlps=tuple(open_tlp) if open_tlp else partners.OPEN_TLPS_DEFAULT,
            remote_url=url,
            remote_collection=remote_collection,
            remote_user=remote_user,
            remote_password=remote_password,
        )
    except partners.PartnerError as exc:
        _taxii_fail(exc)
        return
    typer.echo(f"partner {name} added; its TAXII credential (shown once, store it safely):")
    typer.echo(f"  user:     {name}")
    typer.echo(f"  password: {secret}")


@partner_app.command("list")
def partner_list() -> None:
    """Partners, their collections and permissions (credentials are never shown again)."""
    from rich.console import Console
    from rich.table import Table

    from mamori.share import partners
    from mamori.store import Store

    table = Table("partner", "status", "collections (r/w)", "open TLPs", "remote", "last pull")
    for p in partners.all_partners(Store()):
        grants = ", ".join(
            f"{g.alias} ({'r' if g.can_read else '-'}{'w' if g.can_write else '-'})"
            for g in sorted(p.grants.values(), key=lambda g: g.alias)
        )
        remote = f"{p.remote_url} {p.remote_collection or ''}".strip() if p.remote_url else ""
        status = "revoked" if p.revoked else "active"
        table.add_row(p.name, status, grants, ",".join(p.open_tlps), remote, p.last_pull or "")
    Console().print(table)


@partner_app.command("revoke")
def partner_revoke(name: str = typer.Argument(..., help="Partner to revoke.")) -> None:
    """Revoke a partner's credential at once (its record stays)."""
    from mamori.share import partners
    from mamori.store import Store

    try:
        partners.revoke(Store(), name)
    except partners.PartnerError as exc:
        _taxii_fail(exc)
    typer.echo(f"partner {name} revoked")


@app.command("pull")
def pull_cmd(
    partner: Annotated[str, typer.Argument(help="Partner whose TAXII server to read.")],
    intel_store: Annotated[Path | None, typer.Option("--store", help="Intel store folder.")] = None,
) -> None:
    """Fetch the partner's objects added since the last pull into intel."""
    from mamori.intel.schema import default_store
    from mamori.share import client, partners
    from mamori.store import Store

    try:
        r = client.pull(Store(), partner, intel_store or default_store())
    except (client.ClientError, partners.PartnerError, ValueError) as exc:
        _taxii_fail(exc)
        return
    typer.echo(
        f"{partner}: {r.objects} object(s), {r.indicators} indicator(s) into intel, "
        f"{len(r.rejected)} rejected; next pull after {r.last_added or '(start)'}"
    )
    for oid, why in r.rejected[:20]:
        typer.echo(f"  rejected {oid}: {why}")


@app.command("push")
def push_cmd(
    partner: Annotated[str, typer.Argument(help="Partner whose TAXII server to write to.")],
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="A STIX 2.1 bundle (share export).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="One of our collections.")
    ] = None,
    name_partner: Annotated[
        bool,
        typer.Option("--name-partner", help="Name this partner on the bundle's AMBER objects."),
    ] = False,
) -> None:
    """Send ours to a partner; TLP decides what goes (RED never, AMBER only if named)."""
    from mamori.share import client, partners
    from mamori.store import Store

    if (bundle is None) == (collection is None):
        _taxii_fail(ValueError("give exactly one of --bundle FILE or --collection NAME"))
    store = Store()
    try:
        if bundle is not None:
            objects = _bundle_objects(bundle)
            named = {str(o.get("id")): [partner] for o in objects} if name_partner else {}
            origins: dict[str, str] = {}
        else:
            objects, named, origins = client.collection_objects(store, str(collection))
        r = client.push(store, partner, objects, named=named, origins=origins)
    except (client.ClientError, partners.PartnerError, ValueError) as exc:
        _taxii_fail(exc)
        return
    typer.echo(
        f"{partner}: sent {r.sent}, accepted {r.succeeded}, refused {len(r.failed)}, "
        f"withheld by TLP {len(r.withheld)}"
    )
    for oid, why in [*r.failed, *r.withheld][:20]:
        typer.echo(f"  {oid}: {why}")


@app.command("publish")
def publish_cmd(
    bundle: Annotated[Path, typer.Argument(help="A STIX 2.1 bundle to serve over TAXII.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection alias.")],
    tlp: Annotated[
        str | None, typer.Option("--tlp", help="TLP for objects that carry none.")
    ] = None,
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Partner named on AMBER objects.")
    ] = None,
) -> None:
    """Put a bundle's objects into one of our collections (unmarked objects never leave)."""
    from mamori.share.taxii.ingest import publish
    from mamori.share.tlp import TlpError, parse_tlp
    from mamori.store import Store

    try:
        level = parse_tlp(tlp) if tlp else None
        r = publish(Store(), collection, _bundle_objects(bundle), level, name or [])
    except (TlpError, ValueError) as exc:
        _taxii_fail(exc)
        return
    typer.echo(
        f"{collection}: {r.added} added, {r.already} already there, {len(r.rejected)} rejected"
    )
    for oid, why in r.rejected[:20]:
        typer.echo(f"  rejected {oid}: {why}")


def _bundle_objects(path: Path) -> list[dict[str, Any]]:
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a STIX bundle: {exc}") from None
    if isinstance(data, dict) and data.get("type") == "bundle":
        objects = data.get("objects")
    elif isinstance(data, dict) and "id" in data:
        objects = [data]
    else:
        objects = None
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise ValueError(f"{path}: not a STIX 2.1 bundle (no 'objects' list of objects)")
    return objects


# --- export (share/export.py, share/stix.py, share/misp.py) ------------------------------------


@app.command("export")
def export(
    subject: Annotated[
        str, typer.Argument(help="A patrol report.json (or its folder), or CASE-id.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write; '-' for standard output.")
    ] = Path("-"),
    tlp: Annotated[
        str,
        typer.Option(help="Least TLP on every object (clear, green, amber, amber+strict, red)."),
    ] = "amber",
    fmt: Annotated[str, typer.Option("--format", help="stix (2.1 bundle) or misp (event).")] = (
        "stix"
    ),
    producer: Annotated[
        str, typer.Option(help="Our organisation's name on the objects.")
    ] = "mamori",
    private_addresses: Annotated[
        bool,
        typer.Option(
            "--private-addresses/--public-addresses-only",
            help="Also make indicators of non-routable attacker addresses.",
        ),
    ] = False,
) -> None:
    """Export incidents as a STIX 2.1 bundle (validated) or a MISP event, TLP-marked."""
    from mamori.share.export import build, resolve
    from mamori.share.stix import ExportError, ExportOptions
    from mamori.share.tlp import TlpError, parse_tlp

    try:
        options = ExportOptions(
            tlp=parse_tlp(tlp), producer=producer, private_addresses=private_addresses
        )
        text = build(resolve(subject), fmt.lower(), options)
        if str(output) == "-":
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
    except (ExportError, TlpError, OSError) as exc:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    if str(output) != "-":
        typer.echo(f"{output}: {fmt} export at TLP:{options.tlp.label.upper()} or stricter")
