"""`lmcodec models [--add SOURCE]...`: the models on this machine; convert and cache one."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from ..io.progress import human_bytes
from .messages import PROG, describe, say
from .options import GnuCommand, run_parser
from .work import EXIT_ERROR, EXIT_OK

HELP = f"""\
Usage: {PROG} models [--add SOURCE]...
List the models on this machine, or convert and cache one.

Lists the converted models in the model cache ($LMCODEC_CACHE, or the user cache directory)
and the default model's source if it is installed but not yet converted: model id, size,
SHA-256 (what .lmz files name) and source.

  -a, --add=SOURCE   convert SOURCE and cache it (repeatable), so that files made with it
                     can be decompressed here. SOURCE is a GGUF file, a Hugging Face model
                     directory, a converted .safetensors file, 'default', or a Hugging Face
                     name in the local cache; lmcodec never downloads anything.
  -h, --help         show this help and exit
"""


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command(cls=GnuCommand, add_help_option=False, context_settings={"help_option_names": []})
def _models(add: Optional[list[str]] = typer.Option(None, "-a", "--add"),
            help: bool = typer.Option(False, "-h", "--help")) -> int:
    if help:
        sys.stdout.write(HELP)
        return EXIT_OK
    if add:
        return _add(add)
    return _list()


def models_command(argv: list[str]) -> int:
    """`lmcodec models ARGV...`; raises Usage for a bad command line."""
    return run_parser(app, argv, f"{PROG} models")


def _add(sources: list[str]) -> int:
    from .. import models

    status = EXIT_OK
    for src in sources:
        try:
            m = models.resolve(src)
            sys.stdout.write(f"added {m.model_id} sha256 {m.sha256} ({m.path})\n")
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as e:
            say.error(f"models: {src}", describe(e))
            status = EXIT_ERROR
    return status


def _list() -> int:
    from .. import models

    infos = models.list_models()
    if not infos:
        sys.stdout.write(f"no models in {models.cache_dir()}; install the default: {models.INSTALL_DEFAULT}\n")
        return EXIT_OK
    w = max(len(m.model_id) for m in infos)
    sys.stdout.write(f"{'MODEL':<{w}}  {'SIZE':>10}  {'SHA256':<64}  SOURCE\n")
    for m in infos:
        sys.stdout.write(f"{m.model_id:<{w}}  {human_bytes(m.size):>10}  {m.sha256:<64}  {m.source}\n")
    return EXIT_OK
