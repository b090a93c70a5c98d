"""Root of the `qkf` command: it only assembles the command groups."""

from __future__ import annotations

import sys
import warnings

# Norse 1.1.0 calls torch.jit.script at import time, which torch 2.11 deprecates. That warning is
# about Norse's internals, not the user's run; every other warning stays visible.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)

import typer  # noqa: E402

from qkf_snn.cli import bench, data, demo, models, nir, profile, train  # noqa: E402
from qkf_snn.errors import UserError  # noqa: E402

app = typer.Typer(
    name="qkf",
    help="QKFormer spiking transformers: data, training, profiling, NIR export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(nir.export_app, name="export")
app.add_typer(nir.verify_app, name="verify")
app.add_typer(bench.app, name="bench")
app.command("models")(models.models)
app.command("train")(train.train)
app.command("eval")(train.evaluate)
app.command("profile")(profile.profile)
app.command("demo")(demo.demo)


def main() -> None:
    """Console entry point: bad input becomes one line on stderr and exit status 2."""
    try:
        app(standalone_mode=False)
    except UserError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


if __name__ == "__main__":
    main()
