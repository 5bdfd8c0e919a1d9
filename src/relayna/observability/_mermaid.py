"""``execution_graph_mermaid``: an execution graph as a Mermaid ``flowchart LR``.

Every node is ``nN["label<br/>kind<br/>timestamp"]`` and every edge
``nA -->|kind| nB``. Node ids are ``n0``, ``n1``, ... in the graph's node
order (never a Mermaid keyword, whatever the task id). Labels are escaped so
that any text is valid Mermaid: characters outside a small safe set become
Mermaid entity codes (``#35;`` for ``#``, ``#34;`` for ``"`` ...), newlines
become ``<br/>``, control characters are dropped, and long labels are cut.
"""

from __future__ import annotations

from relayna.observability._graph_model import ExecutionGraph, format_timestamp

__all__ = ["MAX_LABEL_CHARS", "execution_graph_mermaid", "mermaid_text"]

#: Longer label parts are cut (with an ellipsis) so a huge status message
#: cannot make a huge diagram.
MAX_LABEL_CHARS = 120

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:/@+=-()")


def mermaid_text(text: str) -> str:
    """``text`` escaped for a double-quoted Mermaid label."""
    if len(text) > MAX_LABEL_CHARS:
        text = text[: MAX_LABEL_CHARS - 1] + "…"
    out: list[str] = []
    for ch in text:
        if ch in _SAFE:
            out.append(ch)
        elif ch == "\n":
            out.append("<br/>")
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000:
            continue  # control characters and lone surrogates carry nothing readable
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def execution_graph_mermaid(graph: ExecutionGraph) -> str:
    """The graph as Mermaid text (``flowchart LR``), one statement per line."""
    ids = {node.id: f"n{index}" for index, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for node in graph.nodes:
        parts = [mermaid_text(node.label), node.kind]
        stamp = format_timestamp(node.timestamp)
        if stamp is not None:
            parts.append(mermaid_text(stamp))
        lines.append(f'    {ids[node.id]}["{"<br/>".join(parts)}"]')
    for edge in graph.edges:
        source, target = ids.get(edge.source), ids.get(edge.target)
        if source is None or target is None:
            continue
        lines.append(f"    {source} -->|{edge.kind}| {target}")
    return "\n".join(lines) + "\n"
