from hypothesis import given
from hypothesis import strategies as st

from mamori.hashchain import GENESIS, link, verify

bodies = st.lists(
    st.dictionaries(st.sampled_from(["who", "what", "when", "n"]), st.integers() | st.text()),
    min_size=2,
    max_size=8,
)


def chain(items: list[dict]) -> list[tuple[dict, str, str]]:
    out, prev = [], GENESIS
    for body in items:
        digest = link(prev, body)
        out.append((body, prev, digest))
        prev = digest
    return out


@given(bodies)
def test_whole_chain_verifies(items: list[dict]) -> None:
    assert verify(chain(items)) is None


@given(bodies, st.data())
def test_any_edit_deletion_or_swap_is_named(items: list[dict], data: st.DataObject) -> None:
    entries = chain(items)
    i = data.draw(st.integers(0, len(entries) - 1))
    kind = data.draw(st.sampled_from(["edit", "delete", "swap"]))
    if kind == "edit":
        body, prev, digest = entries[i]
        entries[i] = ({**body, "tampered": True}, prev, digest)
    elif kind == "delete":
        if i == len(entries) - 1:  # dropping the tail is only visible against a stored head
            i -= 1
        del entries[i]
    else:
        j = (i + 1) % len(entries)
        if entries[i] == entries[j]:
            return
        entries[i], entries[j] = entries[j], entries[i]
        i = min(i, j)
    broken = verify(entries)
    assert broken is not None and broken.index <= i + 1
