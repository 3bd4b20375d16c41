"""Modelfile parsing and rendering, following ollama ``parser/parser.go``.

Instructions are case-insensitive; ``#`` starts a comment line; a value runs to the
end of the line unless it opens a ``"`` or ``\"\"\"`` quote, which may span lines and
is closed only at the end of a line (there are no escapes, as in Ollama).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.errors import InvalidModelfile
from models.local import LocalModel
from models.parameters import parse_parameters, validate_parameters

__all__ = [
    "COMMANDS",
    "Command",
    "InvalidModelfile",
    "Modelfile",
    "parse_modelfile",
    "parse_parameters",
    "render_modelfile",
    "validate_parameters",
]

COMMANDS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)
MESSAGE_ROLES = ("system", "user", "assistant")
_NEWLINES = "\r\n"
_SPACES = " \t"
_INVALID_COMMAND = "command must be one of " + ", ".join(f'"{c}"' for c in COMMANDS)


@dataclass(frozen=True)
class Command:
    """One instruction: ``name`` is lowercase (``model`` for FROM, the key for PARAMETER)."""

    name: str
    args: str
    role: str | None = None  # MESSAGE only
    parameter: bool = False  # a PARAMETER line; ``name`` is the key

    def render(self) -> str:
        """The instruction as a Modelfile line (values quoted when needed)."""
        if self.parameter:
            return f"PARAMETER {self.name} {_quote(self.args)}"
        if self.name == "model":
            return f"FROM {self.args}"
        if self.name == "message":
            return f"MESSAGE {self.role} {_quote(self.args)}"
        return f"{self.name.upper()} {_quote(self.args)}"


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile: the raw commands plus their meaning."""

    commands: tuple[Command, ...]
    parameters: dict[str, object] = field(default_factory=dict)

    def _all(self, name: str) -> list[str]:
        return [c.args for c in self.commands if c.name == name and not c.parameter]

    def _last(self, name: str) -> str | None:
        values = self._all(name)
        return values[-1] if values else None

    @property
    def from_(self) -> str:
        """The (first) FROM argument: a model name or a file path."""
        return self._all("model")[0]

    @property
    def template(self) -> str | None:
        """The TEMPLATE (last one wins)."""
        return self._last("template")

    @property
    def system(self) -> str | None:
        """The SYSTEM prompt (last one wins)."""
        return self._last("system")

    @property
    def requires(self) -> str | None:
        """The REQUIRES version, if any."""
        return self._last("requires")

    @property
    def adapters(self) -> list[str]:
        """ADAPTER paths, in order."""
        return self._all("adapter")

    @property
    def license(self) -> list[str]:
        """LICENSE texts, in order."""
        return self._all("license")

    @property
    def messages(self) -> list[dict[str, object]]:
        """MESSAGE instructions as ``{"role", "content"}`` dicts."""
        return [
            {"role": c.role, "content": c.args}
            for c in self.commands
            if c.name == "message" and not c.parameter
        ]

    @classmethod
    def parse(cls, text: str) -> Modelfile:
        """Same as :func:`parse_modelfile`."""
        return parse_modelfile(text)

    def render(self) -> str:
        """The Modelfile text (one instruction per line)."""
        return "".join(c.render() + "\n" for c in self.commands)

    def __str__(self) -> str:
        return self.render()


def _quote(text: str) -> str:
    needs = (
        not text
        or any(c in text for c in _NEWLINES)
        or text[0] in _SPACES + '"'
        or text[-1] in _SPACES
    )
    if not needs:
        return text
    # like `ollama show`: triple quotes, unless the text itself contains them
    return f'"{text}"' if '"""' in text else f'"""{text}"""'


def _unquote(text: str) -> str | None:
    """The value inside its quotes, or ``None`` while a quote is still open."""
    if text.startswith('"""'):
        return text[3:-3] if len(text) >= 6 and text.endswith('"""') else None
    if text.startswith('"'):
        return text[1:-1] if len(text) >= 2 and text.endswith('"') else None
    return text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text.removeprefix("\ufeff")
        self.pos = 0

    def error(self, message: str) -> InvalidModelfile:
        line = self.text.count("\n", 0, self.pos) + 1
        return InvalidModelfile(f"(line {line}): {message}")

    def word(self, allowed: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isascii()
            and (self.text[self.pos].isalpha() or self.text[self.pos] in allowed)
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def separator(self, message: str) -> None:
        if self.pos >= len(self.text) or self.text[self.pos] not in _SPACES:
            raise self.error(message)
        while self.pos < len(self.text) and self.text[self.pos] in _SPACES:
            self.pos += 1

    def value(self) -> str:
        buf: list[str] = []
        while True:
            if self.pos >= len(self.text):
                done = _unquote("".join(buf).strip())
                if done is None:
                    raise self.error("unexpected EOF: unterminated quote")
                return done
            ch = self.text[self.pos]
            self.pos += 1
            if ch in _NEWLINES:
                done = _unquote("".join(buf).strip())
                if done is not None:
                    return done
                buf.append(ch)
            elif ch.isprintable() or ch in _SPACES:
                buf.append(ch)  # like Ollama, other control characters are dropped

    def commands(self) -> list[Command]:
        out: list[Command] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in _SPACES + _NEWLINES:
                self.pos += 1
            elif ch == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end + 1
            else:
                out.append(self.command())
        return out

    def command(self) -> Command:
        name = self.word("").lower()
        if name not in COMMANDS:
            raise self.error(_INVALID_COMMAND)
        self.separator(_INVALID_COMMAND)
        if name == "parameter":
            key = self.word("0123456789_")
            if not key:
                raise self.error("PARAMETER needs a name")
            self.separator(f"PARAMETER {key} needs a value")
            return Command(key, self.value(), parameter=True)
        if name == "message":
            role = self.word("")
            if role not in MESSAGE_ROLES:
                raise self.error('message role must be one of "system", "user", or "assistant"')
            self.separator("MESSAGE needs a role and a text")
            return Command("message", self.value(), role=role)
        return Command("model" if name == "from" else name, self.value())


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; :class:`InvalidModelfile` on any error (incl. no FROM)."""
    commands = _Parser(text).commands()
    if not any(c.name == "model" and not c.parameter for c in commands):
        raise InvalidModelfile("no FROM line")
    pairs = [(c.name, c.args) for c in commands if c.parameter]
    try:
        parameters = parse_parameters(pairs)
    except ValueError as exc:
        raise InvalidModelfile(str(exc)) from None
    return Modelfile(commands=tuple(commands), parameters=parameters)


def _format_param(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_modelfile(model: LocalModel) -> str:
    """The Modelfile ``ollama show --modelfile`` prints (FROM is the blob path)."""
    commands = [Command("model", str(model.model_path))]
    commands += [Command("adapter", str(p)) for p in model.adapter_paths]
    if model.projector_path is not None:
        commands.append(Command("model", str(model.projector_path)))
    if model.template is not None:
        commands.append(Command("template", model.template))
    if model.system is not None:
        commands.append(Command("system", model.system))
    if model.config.requires:
        commands.append(Command("requires", model.config.requires))
    for key, value in sorted(model.params.items()):
        for item in value if isinstance(value, list) else [value]:
            commands.append(Command(key, _format_param(item), parameter=True))
    commands += [Command("license", text) for text in model.license]
    for message in model.messages:
        commands.append(Command("message", str(message["content"]), role=str(message["role"])))
    header = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {model.name}\n\n"
    )
    return header + Modelfile(commands=tuple(commands)).render()
