"""download stage: params `data` -> data/raw/ravdess/Actor_NN/03-01-*.<wav|flac>.

The source is `data.source`: synthetic (default, offline), zenodo (the archive is kept,
verified, in data/downloads/) or local (`data.local_path`, a folder or a zip).
"""

import sys
import time

from speech_emotion import params, sources, stage
from speech_emotion.paths import DOWNLOADS, RAW


def main() -> None:
    data = params.load().data
    start = time.perf_counter()
    try:
        files = sources.populate(data, RAW, DOWNLOADS)
    except sources.SourceError as err:
        sys.exit(f"download: {err}")
    actors = len({f.parent.name for f in files})
    print(f"download: {len(files)} files of {actors} actors from source {data.source!r} "
          f"into {RAW} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    stage.run(main)
