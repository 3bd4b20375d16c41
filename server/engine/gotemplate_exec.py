"""Executes a parsed Go template (the rules of Go's ``text/template/exec.go``).

Rendering is bounded: the output may not exceed ``max_output`` characters (strings built by
functions count too, so doubling a variable in a loop stops early) and every node and every
``range`` iteration checks the deadline, so a huge ``range`` ends with an error, not a hang.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from server.engine.gotemplate_ast import (
    Action,
    Arg,
    Break,
    Chain,
    Dot,
    Field,
    GoTemplateError,
    Identifier,
    If,
    Literal,
    Nil,
    Node,
    Pipe,
    Range,
    Text,
    Variable,
    With,
)
from server.engine.gotemplate_funcs import FUNCS, FuncContext
from server.engine.gotemplate_values import (
    MISSING,
    GoStruct,
    go_type,
    print_value,
    sort_keys,
    truth,
)

__all__ = ["execute"]


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _NoFinal:
    """No value is piped into this command."""


_NO_FINAL = _NoFinal()


class _Executor:
    def __init__(self, data: object, *, max_output: int, deadline: float) -> None:
        self.out: list[str] = []
        self.size = 0
        self.max_output = max_output
        self.deadline = deadline
        self.names: list[str] = ["$"]
        self.values: list[object] = [data]
        self.line: int | None = None
        self.ctx = FuncContext(max_len=max_output)

    # --- bounds ---------------------------------------------------------------------------

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise GoTemplateError("template rendering exceeded its deadline", self.line)

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.max_output:
            raise GoTemplateError(
                f"template output exceeds {self.max_output} characters", self.line
            )
        self.out.append(text)

    # --- variables ------------------------------------------------------------------------

    def push(self, name: str, value: object) -> None:
        self.names.append(name)
        self.values.append(value)

    def pop(self, mark: int) -> None:
        del self.names[mark:]
        del self.values[mark:]

    def lookup(self, name: str) -> object:
        for i in range(len(self.names) - 1, -1, -1):
            if self.names[i] == name:
                return self.values[i]
        raise GoTemplateError(f"undefined variable: {name}")

    def set_var(self, name: str, value: object) -> None:
        for i in range(len(self.names) - 1, -1, -1):
            if self.names[i] == name:
                self.values[i] = value
                return
        raise GoTemplateError(f"undefined variable: {name}")

    # --- statements -----------------------------------------------------------------------

    def walk(self, dot: object, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.tick()
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                self.line = node.pipe.line
                value = self.eval_pipeline(dot, node.pipe)
                if not node.pipe.decls:
                    self.write(print_value(value))
            elif isinstance(node, If | With):
                self.walk_if_with(dot, node)
            elif isinstance(node, Range):
                self.walk_range(dot, node)
            elif isinstance(node, Break):
                raise _Break
            else:
                raise _Continue

    def walk_if_with(self, dot: object, node: If | With) -> None:
        mark = len(self.names)
        self.line = node.pipe.line
        value = self.eval_pipeline(dot, node.pipe)
        if truth(value):
            self.walk(value if isinstance(node, With) else dot, node.body)
        elif node.else_body is not None:
            self.walk(dot, node.else_body)
        self.pop(mark)

    def range_items(self, value: object, node: Range) -> Iterable[tuple[object, object]]:
        if value is None or value is MISSING:
            return ()
        if isinstance(value, list | tuple | bytes):
            return enumerate(value)
        if isinstance(value, Mapping):
            return ((k, value[k]) for k in sort_keys(value.keys()))
        if isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decls) > 1:
                raise GoTemplateError(f"can't use {value} to iterate over more than one variable")
            return ((i, i) for i in range(value))
        raise GoTemplateError(f"range can't iterate over {go_type(value)}")

    def walk_range(self, dot: object, node: Range) -> None:
        mark = len(self.names)
        self.line = node.pipe.line
        pipe = node.pipe
        try:
            items = self.range_items(self.eval_pipeline(dot, pipe), node)
            body_mark = len(self.names)
            empty = True
            for index, elem in items:
                empty = False
                self.tick()
                if pipe.is_assign:
                    self.set_var(pipe.decls[0], index if len(pipe.decls) > 1 else elem)
                    if len(pipe.decls) > 1:
                        self.set_var(pipe.decls[1], elem)
                elif pipe.decls:
                    self.values[-1] = elem
                    if len(pipe.decls) > 1:
                        self.values[-2] = index
                try:
                    self.walk(elem, node.body)
                except _Continue:
                    pass
                finally:
                    self.pop(body_mark)
            if empty and node.else_body is not None:
                self.walk(dot, node.else_body)
        except _Break:
            pass
        finally:
            self.pop(mark)

    # --- pipelines ------------------------------------------------------------------------

    def eval_pipeline(self, dot: object, pipe: Pipe) -> object:
        value: object = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd.args, value)
        for name in pipe.decls:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.push(name, value)
        return value

    def eval_command(self, dot: object, args: Sequence[Arg], final: object) -> object:
        first = args[0]
        if isinstance(first, Field):
            return self.eval_fields(dot, first.idents, args, final)
        if isinstance(first, Chain):
            return self.eval_chain(dot, first, args, final)
        if isinstance(first, Identifier):
            return self.eval_function(dot, first.name, args[1:], final)
        if isinstance(first, Variable):
            return self.eval_variable(dot, first, args, final)
        self.not_a_function(args, final)
        if isinstance(first, Pipe):
            return self.eval_pipeline(dot, first)
        if isinstance(first, Dot):
            return dot
        if isinstance(first, Nil):
            raise GoTemplateError("nil is not a command")
        return first.value

    @staticmethod
    def not_a_function(args: Sequence[Arg], final: object) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            raise GoTemplateError("can't give argument to non-function")

    def eval_arg(self, dot: object, node: Arg) -> object:
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            return None
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.eval_function(dot, node.name, (), _NO_FINAL)
        return self.eval_command(dot, (node,), _NO_FINAL)

    def eval_function(
        self, dot: object, name: str, arg_nodes: Sequence[Arg], final: object
    ) -> object:
        func = FUNCS[name]
        count = len(arg_nodes) + (final is not _NO_FINAL)
        if count < func.min_args or (func.max_args is not None and count > func.max_args):
            want = func.min_args if func.max_args == func.min_args else f"at least {func.min_args}"
            raise GoTemplateError(f"wrong number of args for {name}: want {want} got {count}")
        if name in ("and", "or"):
            # Go 1.18+: arguments are evaluated only until the result is known.
            value: object = None
            for node in arg_nodes:
                value = self.eval_arg(dot, node)
                if truth(value) == (name == "or"):
                    return value
            return value if final is _NO_FINAL else final
        args = [self.eval_arg(dot, node) for node in arg_nodes]
        if final is not _NO_FINAL:
            args.append(final)
        result = func.call(self.ctx, args)
        if isinstance(result, str) and len(result) > self.max_output:
            raise GoTemplateError(f"{name}: result exceeds {self.max_output} characters")
        return result

    def eval_variable(
        self, dot: object, node: Variable, args: Sequence[Arg], final: object
    ) -> object:
        value = self.lookup(node.idents[0])
        if len(node.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_fields(value, node.idents[1:], args, final)

    def eval_chain(self, dot: object, node: Chain, args: Sequence[Arg], final: object) -> object:
        if isinstance(node.node, Nil):
            raise GoTemplateError("indirection through explicit nil")
        return self.eval_fields(self.eval_arg(dot, node.node), node.fields, args, final)

    def eval_fields(
        self, receiver: object, idents: Sequence[str], args: Sequence[Arg], final: object
    ) -> object:
        for name in idents[:-1]:
            receiver = self.eval_field(receiver, name, has_args=False)
        has_args = len(args) > 1 or final is not _NO_FINAL
        return self.eval_field(receiver, idents[-1], has_args=has_args)

    @staticmethod
    def eval_field(receiver: object, name: str, *, has_args: bool) -> object:
        if receiver is None or receiver is MISSING:
            return receiver  # Go: a field of nil data is the zero value
        if has_args:
            raise GoTemplateError(f"{name} has arguments but cannot be invoked as function")
        if isinstance(receiver, GoStruct):
            return receiver.get(name)
        if isinstance(receiver, Mapping):
            return receiver.get(name)  # missingkey=zero: a missing key is nil
        raise GoTemplateError(f"can't evaluate field {name} in type {go_type(receiver)}")


def execute(nodes: Sequence[Node], data: object, *, max_output: int, deadline: float) -> str:
    """Render ``nodes`` with ``data`` as dot and ``$``; ``deadline`` is a ``time.monotonic()``."""
    executor = _Executor(data, max_output=max_output, deadline=deadline)
    try:
        executor.walk(data, nodes)
    except GoTemplateError as exc:
        if exc.line is None and executor.line is not None:
            raise GoTemplateError(exc.message, executor.line) from None
        raise
    except RecursionError:
        raise GoTemplateError("template or data nested too deeply", executor.line) from None
    return "".join(executor.out)
