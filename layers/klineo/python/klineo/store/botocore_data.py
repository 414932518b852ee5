"""botocore's data files cut down to what the layer's clients read, written into the layer at build time.

Making the first client costs botocore two large JSON parses that have little to do with us:

- ``endpoints.json`` (1.2 MB, about 26 ms to parse): the endpoints of every AWS service in every
  partition. A client reads only its own service's entries and the partitions' own data.
- each service model, ``service-2.json.gz`` (DynamoDB's is 550 kB once unzipped, about 13 ms): most
  of it is documentation, which only docstrings and ``help()`` read.

``write(layer_root)`` writes, from the botocore that ``layer_root`` ships (imported here), a copy of
``endpoints.json`` whose partitions keep every key of their own but list only ``SERVICES``, and each
service model of ``SERVICES`` without its ``documentation`` strings (every operation and shape
kept), into ``klineo/store/_botocore/<botocore version>/``. ``klineo.store.aws`` puts that folder
first on its data loader's search path only when the version in its name is the running botocore's,
so a copy made from another botocore is never read; without the folder (tests, local runs) botocore
reads its own files. botocore still finds, reads and resolves everything itself: these are its own
files, smaller.

``make build`` runs ``python -m klineo.store.botocore_data .aws-sam/build/KlineoLayer/python`` after
``sam build``; ``bench.cold_start`` does the same to its deployed copy. The folder is never
committed (.gitignore). ``tests/unit/test_botocore_data.py`` checks the copy resolves every region's
endpoint as botocore's own files do, and ``tests/integration/store/test_botocore_data_moto.py``
round-trips the operations the layer calls against moto with clients made from it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import botocore
from botocore.loaders import Loader

__all__ = ["DATA_FOLDER", "SERVICES", "data_path", "write"]

# The services the layer makes clients for (klineo.store.aws.SERVICES, which reads it from here:
# this module is run at build time without the rest of the layer).
SERVICES = ("dynamodb", "secretsmanager", "sqs")
DATA_FOLDER = "_botocore"
_DOC_KEYS = frozenset({"documentation", "documentationUrl"})


def data_path(store_folder: Path | None = None) -> Path:
    """The folder of trimmed data for the running botocore (it may not exist)."""
    return (store_folder or Path(__file__).parent) / DATA_FOLDER / botocore.__version__


def _without_docs(value: Any) -> Any:
    """A model with every documentation string removed, all else as it was."""
    if isinstance(value, dict):
        return {key: _without_docs(item) for key, item in value.items() if key not in _DOC_KEYS}
    if isinstance(value, list):
        return [_without_docs(item) for item in value]
    return value


def _only_services(endpoints: dict[str, Any]) -> dict[str, Any]:
    """endpoints.json with each partition's services cut to SERVICES (partition data whole)."""
    partitions = [
        {**partition, "services": {name: entry for name, entry in partition.get("services", {}).items()
                                   if name in SERVICES}}
        for partition in endpoints["partitions"]
    ]
    return {**endpoints, "partitions": partitions}


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def write(layer_root: Path) -> Path:
    """Write the trimmed files under ``layer_root``/klineo/store; returns the folder written."""
    target = data_path(Path(layer_root) / "klineo" / "store")
    loader = Loader(include_default_search_paths=False, extra_search_paths=[Loader.BUILTIN_DATA_PATH])
    _dump(target / "endpoints.json", _only_services(loader.load_data("endpoints")))
    for service in SERVICES:
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_data(f"{service}/{version}/service-2")
        _dump(target / service / version / "service-2.json", _without_docs(model))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m klineo.store.botocore_data LAYER_PYTHON_FOLDER")
    print(f"trimmed botocore data written to {write(Path(sys.argv[1]))}")
