"""Tag names live in ``bpexp/tracking/tags.py`` only: a grep over the package source for ``"bpexp.<name>"`` literals."""

from __future__ import annotations

import re
from pathlib import Path

from bpexp.tracking import tags

PACKAGE = Path(tags.__file__).resolve().parents[1]
#: A quoted ``bpexp.<name>`` ("...", '...', or the backquotes of an MLflow filter ``tags.`bpexp.x```).
LITERAL = re.compile(r"""(?P<q>["'])bpexp\.(?P<name>[a-z_]+)(?P=q)|tags\.`bpexp\.(?P<filtered>[a-z_]+)`""")


def _modules() -> set[str]:
    """Names of the package's own modules and subpackages (``'bpexp.widgets'`` in a message is not a tag)."""
    return {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}


def tag_literals(text: str) -> list[str]:
    """The ``bpexp.<name>`` tag names quoted in ``text``."""
    modules = _modules()
    found = [m["name"] or m["filtered"] for m in LITERAL.finditer(text)]
    return [f"bpexp.{n}" for n in found if n not in modules]


def test_the_scan_finds_the_literals_it_is_meant_to_find():
    text = '''x = tags.get("bpexp.pruned_epoch")\ny = {'bpexp.error': 1}\nf"tags.`bpexp.study` = 'a'"\n'''
    assert tag_literals(text) == ["bpexp.pruned_epoch", "bpexp.error", "bpexp.study"]
    assert tag_literals("""raise AttributeError(f"module 'bpexp.widgets' has no attribute")""") == []
    assert tag_literals("see :func:`bpexp.fit` and ``bpexp.study``") == []  # docs, not literals


def test_no_tag_name_literal_outside_tags_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(tags.__file__).resolve():
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            offenders += [f"{path.relative_to(PACKAGE.parent)}:{number}: {name}" for name in tag_literals(line)]
    assert offenders == [], "use the constants of bpexp/tracking/tags.py:\n" + "\n".join(offenders)


def test_tags_module_names_are_distinct_and_namespaced():
    names = {k: v for k, v in vars(tags).items() if k.endswith("_TAG")}
    assert len(set(names.values())) == len(names)
    assert all(v.startswith("bpexp.") and len(v) < 250 for v in names.values())  # MLflow's key limit
    assert set(tag_literals(Path(tags.__file__).read_text())) == set(names.values())  # each one once, there
