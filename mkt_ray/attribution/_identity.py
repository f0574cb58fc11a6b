"""Who is who within one tenant: a union-find over identity strings such as `user_id:u1`.

Identity fields joined by an `identify` event, or appearing together on one event, are one person from
the moment the link is processed (the contract's "Identity and consent semantics"). The graph only
links what it is given: the caller decides which events may link (consent).

A person's root is its oldest identity (the first registered), so person ids are stable: a person
keeps its id until it merges with an older person, and the id does not depend on how the links were
batched. Union by age instead of by size: with path compression alone `find` stays amortised
logarithmic, and the trees of real journeys have a handful of ids each.

Storage is array-shaped so the online engine's Numba walk (`_walk.py`) links and finds without Python
objects: each identity string owns an integer slot of a `SlotTable` (`_keys.py`) and the union-find
arrays (`parent`, `age`); a slot whose parent is -1 holds no registered identity. A batch's strings are
mapped to slots by one compiled call per identity field (`codes`); slots handed out for identities
that the batch did not register (no consent) are given back by `release`, so the graph keeps no
identity of a person it was not allowed to link.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mkt_ray.attribution._keys import SlotTable, encode_keys
from mkt_ray.attribution._unionfind import find_root, link, members

UNREGISTERED = -1  # parent of a slot without a registered identity


class IdentityGraph:
    """Union-find over one tenant's identity strings; numpy arrays, so it pickles as is."""

    __slots__ = ("_fresh", "age", "clock", "keys", "parent")

    def __init__(self) -> None:
        self.keys = SlotTable()  # identity string (`field:value`, UTF-8) -> slot
        self._fresh: list[np.ndarray] = []  # slots handed out since the last `release`
        self.parent = np.full(self.keys.capacity, UNREGISTERED, np.int64)
        self.age = np.zeros(self.keys.capacity, np.int64)  # registration order; the oldest of a person is its root
        self.clock = np.zeros(1, np.int64)  # the next registration's age (an array: the walk advances it)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.parent != UNREGISTERED))

    def __contains__(self, identity: object) -> bool:
        return isinstance(identity, str) and self._registered(identity) is not None

    @property
    def capacity(self) -> int:
        return len(self.parent)

    def name(self, slot: int) -> str:
        """The identity string (`field:value`) of a slot."""
        return self.keys.key(slot).decode()

    def names_of(self, slots: np.ndarray) -> list[str]:
        """The identity strings of slots."""
        return self.keys.texts(slots)

    def codes(self, field: str, values: list[str]) -> np.ndarray:
        """The slots of `field`'s values, giving new identities a slot (not registered until linked)."""
        slots, new = self.keys.intern(*encode_keys(f"{field}:", values))
        if len(new):
            self._fresh.append(new)
            if self.keys.capacity > len(self.parent):
                grow = self.keys.capacity - len(self.parent)
                self.parent = np.concatenate([self.parent, np.full(grow, UNREGISTERED, np.int64)])
                self.age = np.concatenate([self.age, np.zeros(grow, np.int64)])
        return slots

    def release(self) -> None:
        """Give back the slots handed out by `codes` that no link registered."""
        if self._fresh:
            fresh = np.concatenate(self._fresh)
            self.keys.remove(fresh[self.parent[fresh] == UNREGISTERED])
            self._fresh.clear()

    def find(self, identity: str) -> str | None:
        """The root of a registered identity (compressing its path), None for an unknown one."""
        slot = self._registered(identity)
        return None if slot is None else self.name(find_root(self.parent, slot))

    def roots(self, ids: Iterable[str]) -> list[str]:
        """The distinct roots of the registered ones among `ids`, oldest first; links nothing."""
        slots = [slot for identity in ids if (slot := self._registered(identity)) is not None]
        found = {find_root(self.parent, slot) for slot in slots}
        return [self.name(root) for root in sorted(found, key=lambda root: self.age[root])]

    def add(self, identity: str) -> str:
        """Register an identity (a person of its own if new); its root."""
        return self.person([identity])

    def person(self, ids: Iterable[str]) -> str:
        """Link `ids` into one person (registering new ones, in the order given); its root.

        Raises ValueError for no ids: an event without identity fields belongs to no person.
        """
        slots = [self._slot_of(identity) for identity in ids]
        if not slots:
            raise ValueError("IdentityGraph.person needs at least one identity")
        root = link(self.parent, self.age, self.clock, np.asarray(slots, np.int64))
        self.release()
        return self.name(root)

    def person_slots(self, identity: str) -> np.ndarray:
        """The slots of every identity of the person of `identity` (empty if unknown), root first."""
        slot = self._registered(identity)
        if slot is None:
            return np.zeros(0, np.int64)
        return members(self.parent, find_root(self.parent, slot))

    def forget(self, identity: str) -> list[str]:
        """Right to be forgotten: remove every identity of the person of `identity`; the removed ids.

        A scan over all slots (forget requests are rare; a member index would cost memory on every
        person). Unknown identity: nothing to remove, [].
        """
        gone = self.person_slots(identity)
        names = self.names_of(gone)
        self.parent[gone] = UNREGISTERED
        self.keys.remove(gone)
        return names

    def _registered(self, identity: str) -> int | None:
        slot = self.keys.lookup(identity.encode())
        return None if slot is None or self.parent[slot] == UNREGISTERED else slot

    def _slot_of(self, identity: str) -> int:
        field, sep, value = identity.partition(":")
        if not sep:
            raise ValueError(f"identity {identity!r} is not 'field:value'")
        return int(self.codes(field, [value])[0])
