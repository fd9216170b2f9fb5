"""SplitReader keeps shard paths inside its root, the staged copy included."""
import pytest

from jeoparda.loaders.split_reader import SplitReader
from jeoparda.safe_files import UnsafePathError
from jeoparda.shards.format import Layout


@pytest.mark.parametrize("file", ["../x.h5", "/etc/passwd", "away/x.h5"])
def test_a_shard_path_leaving_the_root_is_refused(tmp_path, file):
    root, outside = tmp_path / "stage", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "away").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=f"{root}: shard file"):
        SplitReader(root, [{"file": file, "patches": 8}], Layout())


def test_a_shard_path_inside_is_kept(tmp_path):
    reader = SplitReader(tmp_path, [{"file": "train/shard-00000.h5", "patches": 8}], Layout())
    assert reader.files == [tmp_path / "train" / "shard-00000.h5"] and len(reader) == 8
