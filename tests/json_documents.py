"""What the property tests put into documented records: any JSON value, at any place of a record."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_values(max_leaves: int = 6, max_text: int | None = 12) -> st.SearchStrategy:
    """Any JSON value: scalars, and lists and objects of them, nested."""
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=max_text),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
        max_leaves=max_leaves,
    )


def field_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place a value sits in a document: object keys and list indexes, nested."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(field_paths(child, (*prefix, key)))
    return found
