"""Local generative models (GGUF through llama.cpp) behind one method, ``generate``."""

from __future__ import annotations

import atexit
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path

from ..cache import ModelCache
from ..errors import MissingDependency, UsageError
from ..workspace.store import Workspace
from .catalog import DEFAULT_GENERATOR, BaseModel, get_model

# ------------------------------------------------------------- generators ----

class Generator(ABC):
    """A local generative model. Subclasses implement :meth:`generate`."""

    name: str = ""
    sha256: str = ""

    @abstractmethod
    def generate(self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.0, seed: int = 0) -> str:
        """Return the model's reply to ``prompt``."""

    def generate_many(self, prompts: list[str], **opts) -> list[str]:
        from ..progress import track

        return [self.generate(p, **opts) for p in track(prompts, f"generating with {self.name}", unit="prompt")]


class LlamaCppGenerator(Generator):
    """A GGUF model run in-process by llama-cpp-python (chat template from the file)."""

    def __init__(self, model: BaseModel, n_ctx: int = 2048, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover - depends on the install
            raise MissingDependency("llama_cpp", "llm", "A local generative model") from e
        self.name, self.sha256 = model.name, model.sha256
        self._lock = threading.Lock()
        self.llm = Llama(model_path=model.path, n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
                         seed=0, verbose=False)

    def generate(self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.0, seed: int = 0) -> str:
        with self._lock:  # one llama.cpp context runs one request at a time
            out = self.llm.create_chat_completion(
                messages=[{"role": "user", "content": prompt}],
                max_tokens=max_tokens, temperature=temperature, seed=seed,
            )
        return out["choices"][0]["message"]["content"].strip()

    def chat(self, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
             stop: list[str] | None = None, stream: bool = False):
        """A chat completion over ``messages`` (``[{"role", "content"}]``) in llama.cpp's OpenAI-like shape.

        With ``stream=True`` returns an iterator of chunks; the model stays
        locked for this caller until the iterator is exhausted or closed.
        """
        opts = dict(messages=messages, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop or None)
        if not stream:
            with self._lock:
                return self.llm.create_chat_completion(**opts)
        return self._stream(opts)

    def _stream(self, opts: dict):
        with self._lock:
            yield from self.llm.create_chat_completion(stream=True, **opts)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary."""
        with self._lock:
            return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    @property
    def context_length(self) -> int:
        return int(self.llm.n_ctx())


def _close(g: Generator) -> None:
    llm = getattr(g, "llm", None)
    if llm is not None:
        llm.close()


_generators = ModelCache("generators", on_evict=_close)


@atexit.register
def _close_generators() -> None:
    """Free llama.cpp models before interpreter shutdown tears down its bindings."""
    _generators.clear()


def load_generator(ws: Workspace, name: str = DEFAULT_GENERATOR) -> Generator:
    """Load a registered GGUF model for text generation (kept in a bounded cache, shared by threads)."""
    model = get_model(ws, name)
    if model.kind != "gguf":
        raise UsageError(f"model {name!r} is a {model.kind} model, not a generative GGUF model.",
                         fix=f"Use --llm {DEFAULT_GENERATOR} or register a .gguf file.")
    path = Path(model.path)
    if path.is_dir():
        model.path = str(sorted(path.glob("*.gguf"))[0])
    return _generators.get_or_load(model.sha256, lambda: LlamaCppGenerator(model),
                                   size=lambda g: Path(model.path).stat().st_size)
