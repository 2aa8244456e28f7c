"""``lanepaint render``: overlay and comparison videos from one ``*_vis_data.npz`` or every one under a
folder: ``<stem>_overlay.mp4`` and ``<stem>_comparison.mp4`` next to each file, or under ``--out`` at the
file's path relative to the source folder (so the same clip under two instruction folders gets two pairs of
videos, not one). A file that fails is reported on one line and the others go on."""

from __future__ import annotations

import argparse

from core import storage
from core.config_cli import add_settings_arguments, config_from_args
from core.errors import StorageError, UsageError
from core.runner import ItemRunner, RunSummary, Timings
from vla.config import RenderConfig

EXAMPLES = """\
examples:
  lanepaint render outputs/alpamayo/eval_001                      # every *_vis_data.npz under the run
  lanepaint render outputs/alpamayo/eval_001/x/clip_vis_data.npz --out videos/ --fps 5
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, RenderConfig)


def run(args: argparse.Namespace) -> int:
    summary = render_all(config_from_args(RenderConfig, args))
    for line in summary.lines():
        print(line)
    return summary.exit_code


NPZ_SUFFIX = "_vis_data.npz"


def find_vis_files(source: str) -> list[str]:
    try:
        if source.endswith(".npz"):
            if not storage.exists(source):
                raise UsageError(f"{source}: not found")
            return [source]
        if not storage.isdir(source):
            raise UsageError(f"{source}: not found (expected a {NPZ_SUFFIX} file or a folder)")
        files = [u for u in storage.walk_files(source) if u.endswith(NPZ_SUFFIX)]
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    if not files:
        raise UsageError(f"{source}: no *{NPZ_SUFFIX} files found")
    return files


def relative_name(npz_uri: str, source: str) -> str:
    """The file's path under the source folder (its name when the source is the file itself)."""
    root = source.rstrip("/") + "/"
    return npz_uri[len(root):] if npz_uri.startswith(root) else storage.basename(npz_uri)


def video_uris(npz_uri: str, out_dir: str | None, source: str = "") -> tuple[str, str]:
    name = storage.basename(npz_uri)
    stem = name[: -len(NPZ_SUFFIX)] if name.endswith(NPZ_SUFFIX) else name.rsplit(".", 1)[0]
    if out_dir:
        folder = relative_name(npz_uri, source)[: -len(name)].strip("/")
        base = storage.join(out_dir, folder) if folder else out_dir
        return storage.join(base, f"{stem}_overlay.mp4"), storage.join(base, f"{stem}_comparison.mp4")
    base = npz_uri[: -len(name)]
    return base + f"{stem}_overlay.mp4", base + f"{stem}_comparison.mp4"


def render_all(cfg: RenderConfig) -> RunSummary:
    """Render every file; one that fails is recorded and the others go on."""
    from vla import visdata
    from vla.render import write_videos

    files = find_vis_files(cfg.source)

    def done(uri: str) -> bool:
        return all(storage.exists(u) for u in video_uris(uri, cfg.out_dir, cfg.source))

    def render_one(uri: str, timings: Timings) -> dict[str, str]:
        with timings.phase("load"):
            vis = visdata.load(uri)
        overlay, comparison = video_uris(uri, cfg.out_dir, cfg.source)
        with timings.phase("render"):
            write_videos(vis, overlay, comparison, cfg.fps)
        return {"overlay": overlay, "comparison": comparison}

    runner = ItemRunner("render", item_id=lambda uri: relative_name(uri, cfg.source), is_done=done,
                        overwrite=cfg.overwrite)
    return runner.run(files, render_one)
