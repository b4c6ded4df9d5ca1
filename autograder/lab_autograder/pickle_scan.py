"""A pickle's shape, checked before ``torch.load`` builds it: bounded work, whatever the file.

``torch.load(weights_only=True)`` runs no code, but it still builds every dict and set the pickle
describes, and keys that share one hash (integers are hashed by value, so ``k * (2**61 - 1)`` all
collide) make that quadratic: a 1 MiB file held the grader for 42 s. :func:`scan` walks the
opcodes once (``pickletools.genops``, no object built) with a stack of type tags, and refuses a
pickle with too many opcodes, too many items in one container, or more than a few hashed keys
that are not strings (``str`` hashes are salted per process: they cannot be made to collide).
A Lightning checkpoint's only such keys are the optimizer state's parameter indices.
"""

from __future__ import annotations

import pickletools

MAX_OPS = 1_000_000
MAX_ITEMS = 100_000  # in one dict, list or tuple
MAX_UNSALTED_KEYS = 2048  # dict keys and set items that are not str (in the whole file)

_STR = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_PUSH = {
    "NONE": "none", "NEWTRUE": "bool", "NEWFALSE": "bool", "BININT": "int", "BININT1": "int",
    "BININT2": "int", "INT": "int", "LONG": "int", "LONG1": "int", "LONG4": "int", "BINFLOAT": "float",
    "FLOAT": "float", "SHORT_BINBYTES": "bytes", "BINBYTES": "bytes", "BINBYTES8": "bytes",
    "BYTEARRAY8": "bytes", "EMPTY_DICT": "dict", "EMPTY_LIST": "list", "EMPTY_TUPLE": "tuple",
    "EMPTY_SET": "set", "GLOBAL": "global", "PERSID": "object",
}


class PickleRefused(ValueError):
    """The pickle would cost the grader more than a checkpoint or a worker output ever needs."""


def _to_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] == "mark":
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise PickleRefused("a pickle with an unbalanced MARK")


def _containers(name, stack, keys) -> bool:
    """Opcodes that build a container: ``keys`` counts what will be hashed. False: not one of them."""
    if name in ("TUPLE", "LIST", "APPENDS"):
        keys(["str"] * len(_to_mark(stack)))  # size only
        if name != "APPENDS":
            stack.append(name.lower())
    elif name == "DICT":
        keys(_to_mark(stack)[0::2])
        stack.append("dict")
    elif name == "FROZENSET":
        keys(_to_mark(stack))
        stack.append("set")
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        k = int(name[-1])
        if len(stack) < k:
            raise PickleRefused("a pickle that pops an empty stack")
        del stack[len(stack) - k :]
        stack.append("tuple")
    elif name == "SETITEM":
        key = stack[-2] if len(stack) >= 2 else "?"
        del stack[-2:]
        keys([key])
    elif name == "SETITEMS":
        keys(_to_mark(stack)[0::2])
    elif name == "ADDITEMS":
        keys(_to_mark(stack))
    else:
        return False
    return True


def _stack_and_memo(name, arg, stack, memo) -> bool:
    """Opcodes that push, pop, build objects or use the memo. False: not one of them."""
    if name in _STR or name in _PUSH or name == "MARK":
        stack.append("str" if name in _STR else _PUSH.get(name, "mark"))
    elif name in ("APPEND", "BUILD", "POP"):
        stack.pop()
    elif name == "POP_MARK":
        _to_mark(stack)
    elif name == "DUP":
        stack.append(stack[-1])
    elif name in ("STACK_GLOBAL", "REDUCE", "NEWOBJ", "NEWOBJ_EX"):
        del stack[-(3 if name == "NEWOBJ_EX" else 2) :]
        stack.append("object")
    elif name == "BINPERSID":
        stack[-1] = "object"
    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(arg, "object"))
    else:
        return name in ("PROTO", "FRAME", "STOP")
    return True


def scan(data: bytes) -> None:
    """Raise :class:`PickleRefused` unless ``data`` is a pickle of bounded size and hashing work."""
    stack, memo, unsalted = [], {}, 0

    def keys(tags):
        nonlocal unsalted
        if len(tags) > MAX_ITEMS:
            raise PickleRefused(f"a container of more than {MAX_ITEMS} items")
        unsalted += sum(t != "str" for t in tags)
        if unsalted > MAX_UNSALTED_KEYS:
            raise PickleRefused(f"more than {MAX_UNSALTED_KEYS} dict keys or set items that are not strings")

    try:
        for n, (op, arg, _) in enumerate(pickletools.genops(data)):
            if n >= MAX_OPS:
                raise PickleRefused(f"more than {MAX_OPS} pickle opcodes")
            if not (_containers(op.name, stack, keys) or _stack_and_memo(op.name, arg, stack, memo)):
                # EXT*, INST, OBJ, NEXT_BUFFER, ...: never in a torch.save file
                raise PickleRefused(f"a pickle opcode torch.save never writes ({op.name})")
    except PickleRefused:
        raise
    except (ValueError, IndexError, KeyError) as e:
        raise PickleRefused(f"not a well-formed pickle ({type(e).__name__})") from None
