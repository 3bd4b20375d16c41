"""Deterministic benchmark inputs: prompts and chat histories cut from the GPL-3 text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import llama_cpp

CORPUS = Path("/usr/share/common-licenses/GPL-3")


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: str
    content: str

    def wire(self) -> dict[str, str]:
        """The message as every chat API spells it."""
        return {"role": self.role, "content": self.content}


class Corpus:
    """Paragraphs of the GPL-3 text and a tokenizer for the benchmark model."""

    def __init__(self, model_path: Path, corpus: Path = CORPUS) -> None:
        if not corpus.is_file():
            raise FileNotFoundError(f"{corpus} is missing (Debian's base-files provides it)")
        text = corpus.read_text(encoding="utf-8")
        paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
        # Headings and one-liners make poor prompts; keep the prose.
        self.paragraphs = [p for p in paragraphs if len(p) >= 200]
        self._vocab = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)

    def count(self, text: str) -> int:
        """Tokens in ``text`` (no BOS, specials as text)."""
        return len(self._vocab.tokenize(text.encode(), add_bos=False, special=False))

    @cached_property
    def eog_ids(self) -> list[int]:
        """Every end-of-generation token id (for peers that only take a logit bias)."""
        vocab = self._vocab._model.vocab
        n = llama_cpp.llama_vocab_n_tokens(vocab)
        return [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]

    def prompt(self, index: int, tokens: int = 96) -> str:
        """A raw completion prompt of about ``tokens`` tokens, distinct for each index."""
        paragraph = self.paragraphs[index % len(self.paragraphs)]
        words = paragraph.split()
        out: list[str] = []
        for word in words:
            out.append(word)
            if len(out) % 8 == 0 and self.count(" ".join(out)) >= tokens:
                break
        return f"Section {index}. " + " ".join(out)

    def history(self, start: int, tokens: int, tag: str = "") -> list[Message]:
        """Alternating user/assistant turns totalling at least ``tokens`` content tokens.

        ``tag`` opens the first turn, so two histories with different tags share no prefix.
        """
        turns: list[Message] = []
        total = 0
        i = start
        while total < tokens:
            role = "user" if len(turns) % 2 == 0 else "assistant"
            body = self.paragraphs[i % len(self.paragraphs)]
            content = f"Explain this clause: {body}" if role == "user" else body
            if not turns:
                content = f"Conversation {tag}. {content}"
            turns.append(Message(role, content))
            total += self.count(content)
            i += 1
        if turns[-1].role == "user":
            # The history ends with an answer; the benchmark adds the next question.
            turns.append(Message("assistant", self.paragraphs[i % len(self.paragraphs)]))
        return turns

    def close(self) -> None:
        """Free the tokenizer."""
        self._vocab.close()
