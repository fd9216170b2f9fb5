"""The archive-kind registry drives detection, --format, synth --layout and their help."""
from pathlib import Path

from jeoparda.cli import build_parser, main
from jeoparda.sources.detect import SourceOptions, detect_format, open_source
from jeoparda.sources.kinds import ARCHIVE_KINDS, ArchiveKind, SynthRequest, kind_of_layout

OPENED = []


def toy_problem(source: Path) -> str | None:
    return None if (source / "toy.txt").is_file() else "no toy.txt"


def toy_reader(opts: SourceOptions) -> str:
    OPENED.append(opts.source)
    return "a toy source"


def toy_writer(out: Path, request: SynthRequest) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy.txt").write_text(str(request.patches))
    return f"wrote a toy archive of {request.patches}"


TOY = ArchiveKind("toy", "toy", "a folder holding toy.txt", "a toy.txt file\nand nothing else",
                  f"{__name__}:toy_problem", f"{__name__}:toy_reader", f"{__name__}:toy_writer", priority=5)


def option(command, dest):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return sub, next(a for a in sub._actions if a.dest == dest)


def test_the_four_kinds_in_help_order():
    assert list(ARCHIVE_KINDS) == ["bigearthnet-v1", "bigearthnet-v2", "rico-lmdb", "eurosat"]
    assert [k.layout for k in ARCHIVE_KINDS.values()] == ["v1", "v2", "lmdb", "eurosat"]
    assert option("convert", "format")[1].choices == ("auto", *ARCHIVE_KINDS)
    assert kind_of_layout("lmdb").name == "rico-lmdb"


def test_a_registered_kind_is_offered_detected_opened_and_synthesised(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(ARCHIVE_KINDS, "toy", TOY)
    convert, fmt = option("convert", "format")
    synth, layout = option("synth", "layout")
    assert "toy" in fmt.choices and "toy" in layout.choices
    assert "  toy             a folder holding toy.txt" in convert.description
    assert "  toy   a toy.txt file\n        and nothing else" in synth.description
    assert main(["synth", "--out", str(tmp_path / "a"), "--patches", "3", "--layout", "toy"]) == 0
    assert capsys.readouterr().out == "wrote a toy archive of 3\n"
    assert main(["synth", "--out", str(tmp_path / "b"), "--patches", "3", "--layout", "toy", "--block"]) == 1
    assert "--block is for the v2 and lmdb layouts" in capsys.readouterr().err
    assert detect_format(tmp_path / "a") == "toy"
    assert open_source(SourceOptions(tmp_path / "a")) == "a toy source" and OPENED[-1] == tmp_path / "a"
    (tmp_path / "c").mkdir()
    assert main(["convert", "--source", str(tmp_path / "c"), "--out", str(tmp_path / "d"), "--format", "toy"]) == 1
    assert "--format toy but no toy.txt" in capsys.readouterr().err


def test_a_marker_file_claims_the_folder_for_its_kinds(tmp_path):
    """metadata.parquet makes a folder BigEarthNet v2.0 (GeoTIFF tree or LMDB) or an error, even
    where a v1.0 patch tree lies beside it; --format bigearthnet-v1 still opens the tree."""
    import pytest

    from jeoparda.errors import JeopardaError

    assert main(["synth", "--out", str(tmp_path / "a"), "--patches", "4", "--layout", "v1"]) == 0
    assert detect_format(tmp_path / "a") == "bigearthnet-v1"
    (tmp_path / "a" / "metadata.parquet").write_bytes(b"")
    with pytest.raises(JeopardaError, match="has metadata.parquet but neither a BigEarthNet-S2/ folder nor an LMDB"):
        detect_format(tmp_path / "a")
    assert open_source(SourceOptions(tmp_path / "a", format="bigearthnet-v1")) is not None
