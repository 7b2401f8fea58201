"""encode stage: data/interim/data.csv + data/raw/ravdess/ -> data/processed/encoded.h5.

Every utterance of data.csv, in its order, through the pretrained encoder (params.yaml
`encode`; weights from `speech_emotion.encoders.weights.resolve`, sha256-checked): each
layer's mean and std over the utterance's frames, and the last layer's frames, and those
of `encode.copies` changed training copies of each (sessions of its actor); written
to the HDF5 store atomically (`speech_emotion.encoded`).
"""

from speech_emotion import encoded, labels, params, stage
from speech_emotion.paths import DATA_CSV, ENCODED, RAW


def main() -> None:
    encode_params = params.load().encode
    table = labels.read_table(DATA_CSV)
    encoder, weight_attrs = encoded.load_encoder(encode_params)
    encodings = encoded.encode_table(table, RAW, encode_params, encoder)
    encoded.write(ENCODED, table, encodings, encode_params, weight_attrs)
    layers, _, dim = encodings[0].pooled.shape
    length = "padded to 30 s" if encode_params.pad_30s else "real length"
    print(f"{ENCODED}: {len(encodings)} utterances x {layers} layers x {dim} dims "
          f"(Whisper {encode_params.model}, {length}), {encode_params.copies} training "
          f"copies each")


if __name__ == "__main__":
    stage.run(main)
