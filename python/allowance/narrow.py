"""Grant semantics and narrowing (spec/format.md §6): one function, used to verify and to issue."""

from __future__ import annotations

from .arguments import args_violations
from .errors import ERR_DEPTH, ERR_WIDENED, AllowanceError, Violation
from .grant import EffectiveGrant, LinkGrant, Provider, RateWindow


def root_effective(link: LinkGrant) -> EffectiveGrant | None:
    """E_0 (§6.2): link 0's fields, holder = sub, rate = rate or []. None if ``exp`` is absent."""
    g = link.fields
    if g.exp is None:
        return None
    return EffectiveGrant(
        holder=link.sub,
        exp=g.exp,
        rate=g.rate or (),
        nbf=g.nbf,
        depth=g.depth,
        tokens=g.tokens,
        usd_micros=g.usd_micros,
        providers=g.providers,
        models=g.models,
        tools=g.tools,
        risk=g.risk,
        aud=g.aud,
        label=g.label,
        args=g.args,
    )


def tool_covered(pattern: str, tool: str) -> bool:
    """§6.3: ``*`` covers all, a name covers itself, ``p.*`` every longer entry under ``p.``"""
    if pattern == "*" or pattern == tool:
        return True
    if pattern.endswith(".*"):
        stem = pattern[:-1]  # ends in "."
        return tool.startswith(stem) and len(tool) > len(stem)
    return False


def tool_allowed(tools: tuple[str, ...] | None, tool: str) -> bool:
    """Whether an effective ``tools`` allows a tool name (absent: unrestricted)."""
    return tools is None or any(tool_covered(p, tool) for p in tools)


def violations(parent: EffectiveGrant, child: LinkGrant) -> list[Violation]:
    """Every violation of §6.3, in its informative order: depth, exp, nbf, tokens, usdMicros, risk,
    providers (unknown names, then caps per child entry), models, aud, tools."""
    c = child.fields
    found: list[Violation] = []

    def widened(field: str, p: object, ch: object) -> None:
        found.append(Violation(field, "widened", p, ch))

    if parent.depth is not None:
        if parent.depth == 0:
            found.append(Violation("depth", "exhausted", 0, c.depth))
        elif c.depth is not None and c.depth > parent.depth - 1:
            widened("depth", parent.depth, c.depth)
    if c.exp is not None and c.exp > parent.exp:
        widened("exp", parent.exp, c.exp)
    if parent.nbf is not None and c.nbf is not None and c.nbf < parent.nbf:
        widened("nbf", parent.nbf, c.nbf)
    for name, json_name in (("tokens", "tokens"), ("usd_micros", "usdMicros"), ("risk", "risk")):
        p, ch = getattr(parent, name), getattr(c, name)
        if p is not None and ch is not None and ch > p:
            widened(json_name, p, ch)
    if parent.providers is not None and c.providers is not None:
        known = {p.name: p for p in parent.providers}
        for entry in c.providers:
            if entry.name not in known:
                widened(f"providers.{entry.name}", None, entry.name)
        for entry in c.providers:
            p_entry = known.get(entry.name)
            if p_entry is None:
                continue
            for name, json_name in (("tokens", "tokens"), ("usd_micros", "usdMicros")):
                p, ch = getattr(p_entry, name), getattr(entry, name)
                if p is not None and ch is not None and ch > p:
                    widened(f"providers.{entry.name}.{json_name}", p, ch)
    for name in ("models", "aud"):
        p_set, c_set = getattr(parent, name), getattr(c, name)
        if p_set is not None and c_set is not None:
            allowed = set(p_set)
            for element in c_set:
                if element not in allowed:
                    widened(name, None, element)
    if parent.tools is not None and c.tools is not None:
        for tool in c.tools:
            if not any(tool_covered(p, tool) for p in parent.tools):
                widened("tools", None, tool)
    found.extend(args_violations(parent.args, c.args))
    return found


def narrow(parent: EffectiveGrant, child: LinkGrant, link_index: int) -> EffectiveGrant:
    """``narrow(E_{i-1}, G_i)`` (§6.2, §6.3): E_i, or ERR_DEPTH / ERR_WIDENED at the link."""
    found = violations(parent, child)
    if found:
        exhausted = any(v.kind == "exhausted" for v in found)
        first = found[0]
        raise AllowanceError(
            ERR_DEPTH if exhausted else ERR_WIDENED,
            "the parent's depth is exhausted: it may not be extended"
            if exhausted
            else f"link {link_index} grants more than its parent: {first.field}",
            link_index=link_index,
            field="depth" if exhausted else first.field,
            violations=tuple(found),
        )
    c = child.fields

    def pick(name: str) -> object:
        value = getattr(c, name)
        return getattr(parent, name) if value is None else value

    if c.depth is not None:
        depth = c.depth
    elif parent.depth is not None:
        depth = parent.depth - 1
    else:
        depth = None
    return EffectiveGrant(
        holder=child.sub,
        exp=pick("exp"),  # type: ignore[arg-type]
        rate=_merge_rate(parent.rate, c.rate),
        nbf=pick("nbf"),  # type: ignore[arg-type]
        depth=depth,
        tokens=pick("tokens"),  # type: ignore[arg-type]
        usd_micros=pick("usd_micros"),  # type: ignore[arg-type]
        providers=_merge_providers(parent.providers, c.providers),
        models=pick("models"),  # type: ignore[arg-type]
        tools=pick("tools"),  # type: ignore[arg-type]
        risk=pick("risk"),  # type: ignore[arg-type]
        aud=pick("aud"),  # type: ignore[arg-type]
        label=pick("label"),  # type: ignore[arg-type]
        args=pick("args"),  # type: ignore[arg-type]
    )


def _merge_providers(
    parent: tuple[Provider, ...] | None, child: tuple[Provider, ...] | None
) -> tuple[Provider, ...] | None:
    if child is None:
        return parent
    if parent is None:
        return child
    known = {p.name: p for p in parent}
    merged = []
    for entry in child:
        p = known[entry.name]  # narrowing has checked that every child name is the parent's
        merged.append(
            Provider(
                entry.name,
                p.tokens if entry.tokens is None else entry.tokens,
                p.usd_micros if entry.usd_micros is None else entry.usd_micros,
            )
        )
    return tuple(merged)


def _merge_rate(
    parent: tuple[RateWindow, ...], child: tuple[RateWindow, ...] | None
) -> tuple[RateWindow, ...]:
    """The parent's windows, then each child window not equal to one of them (identical encodings,
    §4.3; an absent amount is not a stated 0)."""
    if not child:
        return parent
    seen = set(parent)
    return parent + tuple(w for w in child if w not in seen)
