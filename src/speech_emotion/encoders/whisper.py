"""Whisper's audio encoder in PyTorch, from a CTranslate2 (faster-whisper) `model.bin`.

    wave (S,) float, 16 kHz
    -> log_mel: Whisper's 80-bin log-mel, 100 frames a second         (80, T)
       (padded with zeros to 30 s first when `pad_30s`, as Whisper was trained)
    -> conv1 (k3) + GELU, conv2 (k3, stride 2) + GELU, + sinusoid positions  (T/2, D)
    -> `n_layers` pre-norm Transformer blocks; the final layer norm on the last
    -> hidden states: the input to block 1 and each block's output       (L = n_layers + 1, T/2, D)

`encode()` of CTranslate2 gives the last state only; the weighted sum of every layer
(SUPERB, EmoBox) needs them all, hence this encoder. It reads the same verified file as
CTranslate2 (`speech_emotion.encoders.weights.resolve`) and matches CTranslate2's
`encode()` to float32 rounding (a test checks it where ctranslate2 is installed).
Frozen and in float32; the real length is accepted (frames/2 positions), not only 30 s.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 400            # 25 ms
HOP = 160              # 10 ms: 100 mel frames a second, 50 encoder frames
N_MELS = 80
WINDOW_S = 30          # Whisper's training window
FRAMES_PER_S = SAMPLE_RATE // HOP // 2   # encoder frames a second (conv2 has stride 2)

# CTranslate2 model.bin dtypes (ctranslate2/specs/model_spec.py)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ModelFileError(ValueError):
    """A model.bin that is not a CTranslate2 Whisper model this code reads."""


# ---------------------------------------------------------------- model.bin
def read_model_bin(path: str | Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin by name (aliases resolved), as arrays.

    Format (little-endian): uint32 version | string spec | uint32 revision | uint32 n,
    n x (string name | uint8 rank | rank x uint32 dims | uint8 dtype | uint32 bytes | data),
    uint32 n_aliases, n_aliases x (string alias | string target); string = uint16 length
    with the NUL, the bytes, NUL.
    """
    path = Path(path)
    data = path.read_bytes()
    at = 0

    def take(fmt: str):
        nonlocal at
        values = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:
        nonlocal at
        n = take("H")
        text = data[at:at + n - 1].decode("utf-8")
        at += n
        return text

    try:
        version = take("I")
        if version < 5:
            raise ModelFileError(f"{path}: CTranslate2 binary version {version}; need 5 or later")
        spec, _revision, n = string(), take("I"), take("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(n):
            name = string()
            rank = take("B")
            shape = tuple(take("I") for _ in range(rank))
            dtype, size = take("B"), take("I")
            if dtype not in _DTYPES:
                raise ModelFileError(f"{path}: variable {name}: unsupported dtype code {dtype}")
            variables[name] = np.frombuffer(data, _DTYPES[dtype], size // np.dtype(
                _DTYPES[dtype]).itemsize, at).reshape(shape)
            at += size
        for _ in range(take("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, UnicodeDecodeError, KeyError, ValueError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"{path}: not a readable CTranslate2 model.bin ({err})") from None
    if "Whisper" not in spec:
        raise ModelFileError(f"{path}: a {spec or 'unnamed'} model, not Whisper")
    return variables


# ---------------------------------------------------------------- log-mel
def mel_filters(device: torch.device | str = "cpu") -> torch.Tensor:
    """(80, 201) Slaney mel filter bank, as librosa's (and Whisper's, faster-whisper's)."""
    import torchaudio
    return torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney",
        mel_scale="slaney").T.to(device)


def log_mel(wave: torch.Tensor, filters: torch.Tensor, pad_30s: bool = False) -> torch.Tensor:
    """(S,) 16 kHz -> (80, T) Whisper's log-mel: log10 power, floored 8 below the maximum,
    scaled to about [-1, 1]. T = S // 160 (the last STFT frame dropped, as Whisper does);
    `pad_30s`: zeros appended up to 30 s first, so T = 3000 (longer input is cut)."""
    if pad_30s:
        n = WINDOW_S * SAMPLE_RATE
        wave = nn.functional.pad(wave[:n], (0, max(0, n - wave.shape[-1])))
    spec = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT, device=wave.device),
                      return_complex=True)                              # (201, T + 1)
    power = spec[..., :-1].abs() ** 2                                   # (201, T)
    mel = torch.log10((filters @ power).clamp(min=1e-10))              # (80, T)
    mel = torch.maximum(mel, mel.max() - 8.0)
    return (mel + 4.0) / 4.0


# ---------------------------------------------------------------- the encoder
class Block(nn.Module):
    """Pre-norm self-attention and GELU feed-forward, each with a residual."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:              # (B, T, D)
        b, t, d = x.shape
        q, k, v = (self.qkv(self.attn_norm(x))                        # 3 x (B, H, T, D/H)
                   .view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4))
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, d))
        return x + self.ffn(self.ffn_norm(x))


class WhisperEncoder(nn.Module):
    """Whisper's encoder, returning every hidden state: (B, 80, T) -> (L, B, T/2, D)."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, d_ff: int, n_positions: int):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(n_positions, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    @property
    def n_states(self) -> int:
        return len(self.blocks) + 1

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv1(mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)          # (B, T/2, D)
        if x.shape[1] > len(self.positions):
            raise ValueError(f"{x.shape[1]} encoder frames: Whisper takes at most "
                             f"{len(self.positions)} ({WINDOW_S} s)")
        x = x + self.positions[: x.shape[1]]
        states = [x]
        for i, block in enumerate(self.blocks):
            x = block(x)
            states.append(self.norm(x) if i == len(self.blocks) - 1 else x)
        return torch.stack(states)                                      # (L, B, T/2, D)

    @classmethod
    def from_model_bin(cls, path: str | Path) -> WhisperEncoder:
        """The encoder of a CTranslate2 Whisper model.bin, frozen, in float32, eval mode."""
        v = read_model_bin(path)

        def get(name: str) -> torch.Tensor:
            try:
                return torch.from_numpy(v[f"encoder/{name}"].astype(np.float32))
            except KeyError:
                raise ModelFileError(f"{path}: no variable encoder/{name}") from None

        n_layers = sum(1 for k in v if k.startswith("encoder/layer_") and
                       k.endswith("/self_attention/linear_0/weight"))
        conv1 = get("conv1/weight")                                     # (D, 80, 3)
        d_model = conv1.shape[0]
        heads = v.get("encoder/num_heads")
        n_heads = int(np.asarray(heads).reshape(-1)[0]) if heads is not None else d_model // 64
        d_ff = get("layer_0/ffn/linear_0/weight").shape[0]
        positions = get("position_encodings/encodings")
        model = cls(d_model, n_heads, n_layers, d_ff, positions.shape[0])
        state = {"conv1.weight": conv1, "conv1.bias": get("conv1/bias"),
                 "conv2.weight": get("conv2/weight"), "conv2.bias": get("conv2/bias"),
                 "positions": positions,
                 "norm.weight": get("layer_norm/gamma"), "norm.bias": get("layer_norm/beta")}
        for i in range(n_layers):
            p, b = f"layer_{i}/", f"blocks.{i}."
            for ours, theirs in (("attn_norm", "self_attention/layer_norm"),
                                 ("ffn_norm", "ffn/layer_norm")):
                state[b + ours + ".weight"] = get(p + theirs + "/gamma")
                state[b + ours + ".bias"] = get(p + theirs + "/beta")
            for ours, theirs in (("qkv", "self_attention/linear_0"),
                                 ("out", "self_attention/linear_1"),
                                 ("ffn.0", "ffn/linear_0"), ("ffn.2", "ffn/linear_1")):
                state[b + ours + ".weight"] = get(p + theirs + "/weight")
                state[b + ours + ".bias"] = get(p + theirs + "/bias")
        model.load_state_dict(state)
        model.requires_grad_(False)
        return model.eval()


def encoder_frames(n_samples: int, pad_30s: bool = False) -> int:
    """Encoder frames (50 a second) of a wave of `n_samples` at 16 kHz."""
    mel = WINDOW_S * SAMPLE_RATE // HOP if pad_30s else n_samples // HOP
    return math.ceil(mel / 2)


class Encoder:
    """Wave in, every layer's frames out: `Encoder(folder)(wave) -> (L, T/2, D)` float32.

    `folder` is what `weights.resolve` returns. One utterance per call (no padding between
    utterances, so a row's values never depend on its batch); on CPU at `torch`'s current
    thread count, which the caller fixes for byte-stable output."""

    def __init__(self, folder: str | Path, pad_30s: bool = False,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = WhisperEncoder.from_model_bin(Path(folder) / "model.bin").to(self.device)
        self.filters = mel_filters(self.device)
        self.pad_30s = pad_30s

    @property
    def n_states(self) -> int:
        return self.model.n_states

    @property
    def d_model(self) -> int:
        return self.model.conv1.out_channels

    @torch.inference_mode()
    def __call__(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        wave = torch.as_tensor(wave, dtype=torch.float32, device=self.device)
        if wave.ndim != 1 or wave.shape[0] < N_FFT:
            raise ValueError(f"a mono wave of at least {N_FFT} samples is needed, "
                             f"got shape {tuple(wave.shape)}")
        mel = log_mel(wave, self.filters, self.pad_30s)                 # (80, T)
        return self.model(mel[None])[:, 0].float().cpu()                # (L, T/2, D)
