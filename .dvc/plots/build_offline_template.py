"""Build .dvc/plots/offline.html: the page `dvc plots show` fills, with Vega, Vega-Lite and vega-embed inline.

DVC's default page loads the three libraries from a public CDN, so it is blank offline; `.dvc/config` points
`plots.html_template` here instead. The libraries are the npm registry's builds, unmodified (BSD-3-Clause, the
University of Washington Interactive Data Lab: .dvc/plots/LICENSE-vega.txt). To rebuild (or move to new versions):

    cd /tmp && npm pack vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0
    for f in vega-*.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    python <repo>/.dvc/plots/build_offline_template.py /tmp   # checks the sha256 below, writes offline.html
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

# (npm package folder, file of its build/, sha256 of that file): the builds this template was made from
LIBRARIES = (
    ("vega-5.33.1", "vega.min.js", "463f3db6a40b20e9747b4ed38f37ed0add508838f9141b1cf8366784b07b30c8"),
    ("vega-lite-5.23.0", "vega-lite.min.js", "58c27358e26f2d319cf62f45bc17a4c8362f08645001df2ec8d341eee4097c7f"),
    ("vega-embed-6.29.0", "vega-embed.min.js", "12d02acfbe3ec59ef9a37dd4822a2e04e2961b5bbb671bbe661d2221715b99da"),
)

PAGE = """<!DOCTYPE html>
<html>
<head>
<!-- ginn-lab: `dvc plots show` page with {versions} inline (BSD-3-Clause, .dvc/plots/LICENSE-vega.txt);
     built by .dvc/plots/build_offline_template.py: renders with no network. -->
<meta charset="utf-8">
{refresh_tag}
<title>DVC Plot</title>
{libs}
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def build(npm_dir: Path) -> str:
    """The template text, from the unpacked npm packages under npm_dir (each file's sha256 checked)."""
    libs, versions = [], []
    for folder, name, sha in LIBRARIES:
        data = (npm_dir / folder / "package" / "build" / name).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise SystemExit(f"error: {folder}/{name}: sha256 {got}, expected {sha}")
        text = data.decode()
        if "</script" in text or "{plot_divs}" in text:
            raise SystemExit(f"error: {folder}/{name} cannot be inlined as is")
        libs.append(f"<script>/* {folder} build/{name} */\n{text}\n</script>")
        versions.append(folder)
    # DVC fills {refresh_tag} and {plot_divs}; with no {scripts} placeholder it adds no CDN script tag
    return PAGE.format(versions=", ".join(versions), libs="\n".join(libs), refresh_tag="{refresh_tag}",
                       plot_divs="{plot_divs}")  # fmt: skip


if __name__ == "__main__":
    out = Path(__file__).with_name("offline.html")
    out.write_text(build(Path(sys.argv[1])))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
