"""Who is who within one tenant: a union-find over identity strings such as `user_id:u1`.

Identity fields joined by an `identify` event, or appearing together on one event, are one person from
the moment the link is processed (the contract's "Identity and consent semantics"). The graph only
links what it is given: the caller decides which events may link (consent).

A person's root is its oldest identity (the first registered), so person ids are stable: a person
keeps its id until it merges with an older person, and the id does not depend on how the links were
batched. Union by age instead of by size: with path compression alone `find` stays amortised
logarithmic, and the trees of real journeys have a handful of ids each.
"""

from __future__ import annotations

from collections.abc import Iterable


class IdentityGraph:
    """Union-find over one tenant's identity strings; plain dicts, so it pickles as is."""

    __slots__ = ("_age", "_next_age", "_parent")

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._age: dict[str, int] = {}  # identity -> registration order; the oldest of a person is its root
        self._next_age = 0

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, identity: object) -> bool:
        return identity in self._parent

    def __getstate__(self) -> tuple[dict[str, str], dict[str, int], int]:
        return self._parent, self._age, self._next_age

    def __setstate__(self, state: tuple[dict[str, str], dict[str, int], int]) -> None:
        self._parent, self._age, self._next_age = state

    def find(self, identity: str) -> str | None:
        """The root of a registered identity (compressing its path), None for an unknown one."""
        parent = self._parent
        root = parent.get(identity)
        if root is None:
            return None
        while parent[root] != root:
            root = parent[root]
        while identity != root:  # path compression
            identity, parent[identity] = parent[identity], root
        return root

    def roots(self, ids: Iterable[str]) -> list[str]:
        """The distinct roots of the registered ones among `ids`, oldest first; links nothing."""
        found = {root for root in map(self.find, ids) if root is not None}
        return sorted(found, key=self._age.__getitem__) if len(found) > 1 else list(found)

    def add(self, identity: str) -> str:
        """Register an identity (a person of its own if new); its root."""
        root = self.find(identity)
        if root is None:
            self._parent[identity] = identity
            self._age[identity] = self._next_age
            self._next_age += 1
            root = identity
        return root

    def person(self, ids: Iterable[str]) -> str:
        """Link `ids` into one person (registering new ones, in the order given); its root.

        Raises ValueError for no ids: an event without identity fields belongs to no person.
        """
        roots = [self.add(identity) for identity in ids]
        if not roots:
            raise ValueError("IdentityGraph.person needs at least one identity")
        age = self._age
        oldest = min(roots, key=age.__getitem__)
        for root in roots:
            if root != oldest:
                self._parent[root] = oldest
        return oldest

    def forget(self, identity: str) -> list[str]:
        """Right to be forgotten: remove every identity of the person of `identity`; the removed ids.

        A scan over all identities (forget requests are rare; a member index would cost memory on
        every person). Unknown identity: nothing to remove, [].
        """
        root = self.find(identity)
        if root is None:
            return []
        gone = [node for node in self._parent if self.find(node) == root]
        for node in gone:
            del self._parent[node]
            del self._age[node]
        return gone
