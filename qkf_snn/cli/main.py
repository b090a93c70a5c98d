"""Root of the `qkf` command: it assembles the command groups and turns every way a command can end
into an exit status.

Exit status: 0 done; 1 a failed check (`verify nir`) or a diverged run; 2 bad input or a usage error
(one line on stderr, never a traceback); 3 a run interrupted by a signal (resume it); 130 aborted.
"""

from __future__ import annotations

import sys
import warnings

# Norse 1.1.0 calls torch.jit.script at import time, which torch 2.11 deprecates. That warning is
# about Norse's internals, not the user's run; every other warning stays visible.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)

import typer  # noqa: E402

# typer >= 0.24 bundles its own click as the private `typer._click` (there is no `click` module); its
# usage errors are not re-exported publicly. tests/cli/test_usage_errors.py covers every command.
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # noqa: E402
from typer.exceptions import TyperException  # noqa: E402

from qkf_snn.cli import bench, data, demo, deploy, models, nir, profile, sweep, train  # noqa: E402
from qkf_snn.errors import RunStopped, UserError  # noqa: E402

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
app.add_typer(deploy.app, name="deploy")
app.add_typer(sweep.app, name="sweep")
app.command("models")(models.models)
app.command("train")(train.train)
app.command("eval")(train.evaluate)
app.command("profile")(profile.profile)
app.command("demo")(demo.demo)


def main() -> None:
    """Console entry point (see the module docstring for the exit statuses)."""
    args = train.join_multi_values(sys.argv[1:])
    try:
        # Non-standalone, so that usage errors reach the handlers below instead of click's own
        # multi-line report. In this mode a command's `typer.Exit(code)` comes back as the return
        # value (commands return None), and it must become the exit status.
        status = app(args=args, prog_name="qkf", standalone_mode=False)
    except UserError as err:
        _fail(str(err), 2)
    except RunStopped as err:
        _fail(str(err), err.exit_code)
    except NoArgsIsHelpError as err:  # a bare group: its help is already on stdout
        _fail(f"{_where(err)}missing command; choose one of: {', '.join(_commands(err))}", 2)
    except UsageError as err:
        _fail(_where(err) + _one_line(err.format_message()), 2)
    except TyperException as err:  # click's other errors (e.g. a file it could not open)
        _fail(_one_line(err.format_message()), err.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, status: int) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    sys.exit(status)


def _where(err: UsageError) -> str:
    """``"train: "`` for an error of ``qkf train``; empty for the root command."""
    path = err.ctx.command_path.split(" ", 1) if err.ctx is not None else []
    return f"{path[1]}: " if len(path) == 2 else ""


def _commands(err: NoArgsIsHelpError) -> list[str]:
    return err.ctx.command.list_commands(err.ctx)


def _one_line(message: str) -> str:
    """click's message on one line, starting in lower case like the project's own errors."""
    text = " ".join(message.split())
    return text[:1].lower() + text[1:]


if __name__ == "__main__":
    main()
