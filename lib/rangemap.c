// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rangemap.c - a map from 64-bit addresses to 64-bit values, stored as
 * coalesced ranges in a B+tree with wide, cache-friendly nodes.
 *
 * Theory of operation
 *
 * Entries. Each stored range [start, end) with its non-zero value is one
 * entry. The invariants of rangemap.h (disjoint, non-empty, touching
 * neighbours hold different values, 0 never stored) hold between calls, so
 * ordering entries by start also orders them by end.
 *
 * Nodes. Entries live in leaves, RM_LEAF_MAX of them per leaf, as three
 * parallel arrays (start[], end[], value[]) so that a search reads only the
 * packed start[] keys. Inner nodes hold up to RM_INNER_MAX children and one
 * key between each two neighbours. Every leaf is at level 0 and every inner
 * node at 1 + the level of its children: all leaves are at the same depth,
 * and each node records its level so that mc_rangemap_check() can verify it.
 * Nodes are about 1 KiB (one 1024-byte malloc chunk), so a look-up touches
 * height ~= log_45(n) nodes instead of the ~1.44 log2(n) nodes of a binary
 * tree: 4 at 10^6 ranges instead of ~20.
 *
 * Searching a node. On entering a node the descent prefetches all of its
 * keys, so their cache misses overlap instead of coming one per step of the
 * binary search. Inner nodes are searched with branches, which the CPU
 * predicts for repeated and nearby addresses and then speculates into the
 * next node (rm_pick()); leaves without (rm_rank()), as is the final
 * contains-or-not test of mc_rangemap_get().
 *
 * Gap keys. The key between children i and i+1 of an inner node is any
 * address k with
 *
 *     end of every entry under child i  <=  k  <=  start of every entry
 *                                                   under child i+1,
 *
 * i.e. it lies in the gap (possibly empty) between the two subtrees, not
 * necessarily on an entry's start. Descending by an address a to the child
 * after the keys <= a reaches the only leaf that can hold an entry
 * containing a (so mc_rangemap_get() is one descent and one search per
 * node), and the first entry ending above a is in that leaf or is the first
 * entry of the next one. Shrinking an entry never breaks a key; growing one
 * (merging, inserting at a leaf's edge) widens at most the nearest key on
 * each side of its leaf (rm_widen()); splits and rebalancing set keys from
 * the entries they move.
 *
 * Fill. Every leaf but the root holds at least RM_LEAF_MIN entries and every
 * inner node but the root at least RM_INNER_MIN children (half of the
 * maximum), also after removals: an underfull node is merged with a sibling
 * when both fit in one node, otherwise the two share their contents evenly.
 * With leaves of at most 42 entries in 1024-byte chunks that bounds the
 * heap at 1024 / 21 ~= 49 bytes per range for the leaves plus under 2 for
 * the inner nodes, malloc's overhead included, whatever was inserted or
 * removed; random insertion gives about 70 % fill (~36 bytes per range).
 *
 * mc_rangemap_set(start, end, value) works in two phases:
 *
 *   1. Read only: find the first entry ending at or after @start (and the
 *      one before it, if it touches @start) and the first ending at or after
 *      @end. From those decide what changes: entries straddling @start or
 *      @end with another value are trimmed; straddling or touching entries
 *      with @value widen the window [s, e) they merge into; every entry
 *      whose start then lies in [s, e) is covered. A new entry is needed
 *      only when nothing is covered (or to punch a hole into one entry);
 *      only then can a leaf split, and the descent for the insertion tells
 *      exactly how many nodes the splits need (the leaf and the full inner
 *      nodes above it, plus a new root). Those are allocated now, so
 *      -ENOMEM leaves the map untouched. Removing ranges never allocates.
 *   2. Mutate, which cannot fail: trim the straddling entries in place;
 *      remove the covered entries (all of them for value 0; all but the
 *      first otherwise, which is then overwritten with [s, e) and @value);
 *      or insert the new entry, splitting the leaf and its full ancestors.
 *
 * Removing a run of covered entries (rm_remove_range()) works leaf by leaf:
 * descend to the first one, cut it and the rest of the run in that leaf,
 * rebalance that leaf upwards, repeat while the run goes on into the next
 * leaf. A leaf prefers its left sibling, which holds no covered entry, so
 * each round removes a leaf's worth of entries: O(log n + k) for k ranges
 * removed. Every look-up is one O(log n) descent; walks keep the descent
 * path (at most RM_MAX_DEPTH levels) and step to the next leaf through it,
 * so they cost O(log n + visited runs) and allocate nothing.
 *
 * Memory: mc_rangemap_memory() is the map struct plus every node's size as
 * passed to malloc(); nothing is proportional to the size of the address
 * space.
 *
 * Half-open ranges: [start, end) with end <= UINT64_MAX means the single
 * address UINT64_MAX can never be stored; it always reads as 0.
 */

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rangemap.h"

/* Node widths. Overridable at build time (-D) to stress every path of the
 * rebalancing code with small nodes; the defaults make both node types
 * 1016 bytes, which glibc serves from a 1024-byte chunk. */
#ifndef RM_LEAF_MAX
#define RM_LEAF_MAX 42
#endif
#ifndef RM_INNER_MAX
#define RM_INNER_MAX 63
#endif
#define RM_LEAF_MIN (RM_LEAF_MAX / 2)
#define RM_INNER_MIN (RM_INNER_MAX / 2)

/*
 * Levels a path can hold. A non-root inner node has at least RM_INNER_MIN
 * (>= 2) children, so 32 levels would need over 2^30 leaves even with the
 * smallest test nodes; the default nodes need 6 or 7 levels for 10^9
 * ranges. rm_spares_alloc() refuses to grow past it.
 */
#define RM_MAX_DEPTH 32

_Static_assert(RM_LEAF_MAX >= 4, "a leaf split must leave both halves at least half full");
_Static_assert(RM_INNER_MAX >= 4, "inner nodes need at least two children when not full");

/**
 * struct rm_leaf - a leaf: up to RM_LEAF_MAX entries in address order
 * @n:     number of entries (>= RM_LEAF_MIN unless the leaf is the root)
 * @level: always 0 (checked)
 * @start: first address of each entry, strictly increasing
 * @end:   one past the last address of each entry
 * @value: each entry's value, never 0
 */
struct rm_leaf {
        uint32_t n;
        uint32_t level;
        uint64_t start[RM_LEAF_MAX];
        uint64_t end[RM_LEAF_MAX];
        uint64_t value[RM_LEAF_MAX];
};

/**
 * struct rm_inner - an inner node
 * @n:     number of children (>= RM_INNER_MIN unless root, >= 2 as root)
 * @level: 1 + the level of the children
 * @key:   @n - 1 gap keys; @key[i] separates @child[i] from @child[i + 1]
 * @child: owned subtrees, struct rm_leaf at level 1, struct rm_inner above
 */
struct rm_inner {
        uint32_t n;
        uint32_t level;
        uint64_t key[RM_INNER_MAX - 1];
        void *child[RM_INNER_MAX];
};

/**
 * struct mc_rangemap - the map
 * @root:   root node, owned; a leaf if @height is 1; NULL when empty
 * @height: number of levels (0 when empty)
 * @count:  number of entries
 * @leaves: number of leaves allocated
 * @inners: number of inner nodes allocated
 */
struct mc_rangemap {
        void *root;
        unsigned height;
        size_t count;
        size_t leaves;
        size_t inners;
};

/**
 * struct rm_entry - one range, outside the tree
 * @start: first address
 * @end:   one past the last
 * @value: the value
 */
struct rm_entry {
        uint64_t start, end, value;
};

/**
 * struct rm_path - a position in the tree and the descent that reached it
 * @node:   @node[l] is the inner node at level l (1 <= l < @height), borrowed
 * @idx:    @idx[l] is the child taken at @node[l]
 * @leaf:   the leaf reached, NULL for an empty map or past the end
 * @pos:    index in @leaf
 * @height: the tree's height when the path was taken
 *
 * A path is valid until the tree's structure changes.
 */
struct rm_path {
        struct rm_inner *node[RM_MAX_DEPTH];
        unsigned idx[RM_MAX_DEPTH];
        struct rm_leaf *leaf;
        unsigned pos;
        unsigned height;
};

/**
 * struct rm_spares - nodes allocated before a mutation, for the splits
 * @leaf:    one leaf or NULL
 * @inner:   inner nodes; the first @n_inner are allocated
 * @n_inner: number allocated
 * @used:    number handed out by rm_spare_inner()
 */
struct rm_spares {
        struct rm_leaf *leaf;
        struct rm_inner *inner[RM_MAX_DEPTH + 1];
        unsigned n_inner;
        unsigned used;
};

/**
 * rm_rank() - how many elements of a sorted array are <= @key
 * @a:   array sorted in strictly increasing order
 * @n:   number of elements
 * @key: the key
 *
 * Branch-free binary search (the comparison compiles to a conditional
 * move), used in leaves: the search there is the last step of a look-up,
 * with nothing after it for speculation to overlap, and its outcome is the
 * least predictable, so a mispredicted branch would only cost.
 *
 * Return: the number of elements <= @key, 0..@n
 */
static inline unsigned rm_rank(const uint64_t *a, unsigned n, uint64_t key)
{
        const uint64_t *base = a;

        if (n == 0)
                return 0;
        while (n > 1) {
                unsigned half = n / 2;

                base = base[half] <= key ? base + half : base;
                n -= half;
        }
        return (unsigned) (base - a) + (*base <= key);
}

/**
 * rm_pick() - the child of an inner node whose subtree can hold @key
 * @in:  inner node
 * @key: address
 *
 * A plain binary search over the gap keys, with branches: the upper levels
 * are shared by nearby and repeated look-ups, for which the branches are
 * predicted, so the CPU starts loading the next node before this one's
 * comparisons resolve. (With the branch-free rm_rank() here instead,
 * bench-rangemap's cache-hot look-up at 10^6 ranges took about twice as
 * long, its random look-ups about the same.)
 *
 * Return: the number of keys <= @key, i.e. the child's index
 */
static inline unsigned rm_pick(const struct rm_inner *in, uint64_t key)
{
        unsigned lo = 0, hi = in->n - 1;

        while (lo < hi) {
                unsigned mid = (lo + hi) / 2;

                if (in->key[mid] <= key)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/**
 * rm_prefetch() - start loading @len bytes at @p into the cache
 * @p:   first byte
 * @len: number of bytes
 *
 * A node's keys span several cache lines; asking for all of them at once
 * overlaps their misses instead of paying one per binary-search step.
 */
static inline void rm_prefetch(const void *p, size_t len)
{
        const char *c = p;

        for (size_t off = 0; off < len; off += 64)
                __builtin_prefetch(c + off);
}

/**
 * rm_descend() - walk from the root towards @key
 * @m:   the map
 * @key: address
 * @p:   filled with the path; @p->pos is the number of entries of the leaf
 *       whose start is <= @key
 *
 * Every entry in a leaf left of the one reached ends at or below @key and
 * every entry in a leaf right of it starts above @key (gap keys, see the
 * top of the file).
 */
static void rm_descend(const mc_rangemap *m, uint64_t key, struct rm_path *p)
{
        void *n = m->root;

        p->height = m->height;
        if (!n) {
                p->leaf = NULL;
                p->pos = 0;
                return;
        }
        for (unsigned lvl = m->height - 1; lvl > 0; lvl--) {
                struct rm_inner *in = n;
                unsigned c;

                rm_prefetch(in->key, (in->n - 1) * sizeof(in->key[0]));
                c = rm_pick(in, key);
                p->node[lvl] = in;
                p->idx[lvl] = c;
                n = in->child[c];
        }
        p->leaf = n;
        rm_prefetch(p->leaf->start, p->leaf->n * sizeof(p->leaf->start[0]));
        p->pos = rm_rank(p->leaf->start, p->leaf->n, key);
}

/**
 * rm_next_leaf() - move a path to the first entry of the next leaf
 * @p: path
 *
 * Return: true, or false (and @p->leaf NULL) if @p was in the last leaf
 */
static bool rm_next_leaf(struct rm_path *p)
{
        for (unsigned lvl = 1; lvl < p->height; lvl++) {
                if (p->idx[lvl] + 1 < p->node[lvl]->n) {
                        void *n = p->node[lvl]->child[++p->idx[lvl]];

                        while (--lvl > 0) {
                                p->node[lvl] = n;
                                p->idx[lvl] = 0;
                                n = p->node[lvl]->child[0];
                        }
                        p->leaf = n;
                        p->pos = 0;
                        return true;
                }
        }
        p->leaf = NULL;
        return false;
}

/**
 * rm_next() - move a path to the next entry
 * @p: path on an entry
 *
 * Return: true, or false at the end of the map
 */
static bool rm_next(struct rm_path *p)
{
        if (++p->pos < p->leaf->n)
                return true;
        return rm_next_leaf(p);
}

/**
 * rm_seek() - position a path on the first entry that ends above @addr
 * @m:    the map
 * @addr: address
 * @p:    filled with the path (borrowing @m until it changes)
 *
 * Return: true, or false if no entry ends above @addr
 */
static bool rm_seek(const mc_rangemap *m, uint64_t addr, struct rm_path *p)
{
        rm_descend(m, addr, p);
        if (!p->leaf)
                return false;
        if (p->pos > 0 && p->leaf->end[p->pos - 1] > addr)
                p->pos--;
        if (p->pos == p->leaf->n)
                return rm_next_leaf(p);
        return true;
}

/**
 * rm_get_entry() - copy the entry a path is on
 * @p: path on an entry
 *
 * Return: the entry
 */
static struct rm_entry rm_get_entry(const struct rm_path *p)
{
        return (struct rm_entry){ p->leaf->start[p->pos], p->leaf->end[p->pos], p->leaf->value[p->pos] };
}

/**
 * rm_widen() - make the keys around a leaf admit an entry [@lo, @hi) in it
 * @p:  path to the leaf
 * @lo: lowest start the leaf will hold
 * @hi: highest end the leaf will hold
 *
 * Only the nearest key on each side bounds the leaf's first and last entry
 * (further keys bound subtrees of which the leaf is not at the edge). The
 * caller guarantees the result is ordered, so the entry before the leaf
 * ends at or below @lo and the one after it starts at or above @hi: the
 * widened keys still lie in their gaps.
 */
static void rm_widen(const struct rm_path *p, uint64_t lo, uint64_t hi)
{
        unsigned lvl;

        for (lvl = 1; lvl < p->height; lvl++)
                if (p->idx[lvl] > 0) {
                        uint64_t *k = &p->node[lvl]->key[p->idx[lvl] - 1];

                        if (*k > lo)
                                *k = lo;
                        break;
                }
        for (lvl = 1; lvl < p->height; lvl++)
                if (p->idx[lvl] + 1 < p->node[lvl]->n) {
                        uint64_t *k = &p->node[lvl]->key[p->idx[lvl]];

                        if (*k < hi)
                                *k = hi;
                        break;
                }
}

/**
 * rm_leaf_move() - move entries within or between leaves (memmove semantics)
 * @dst: destination leaf
 * @di:  first destination index
 * @src: source leaf (may be @dst)
 * @si:  first source index
 * @k:   number of entries
 */
static void rm_leaf_move(struct rm_leaf *dst, unsigned di, const struct rm_leaf *src, unsigned si, unsigned k)
{
        memmove(&dst->start[di], &src->start[si], k * sizeof(dst->start[0]));
        memmove(&dst->end[di], &src->end[si], k * sizeof(dst->end[0]));
        memmove(&dst->value[di], &src->value[si], k * sizeof(dst->value[0]));
}

/**
 * rm_leaf_put() - write one entry into a leaf slot
 * @l: leaf
 * @i: index
 * @e: entry
 */
static void rm_leaf_put(struct rm_leaf *l, unsigned i, const struct rm_entry *e)
{
        l->start[i] = e->start;
        l->end[i] = e->end;
        l->value[i] = e->value;
}

/**
 * rm_spare_inner() - take one of the inner nodes allocated for this update
 * @sp: the spares
 *
 * Return: the node (the caller fills it and links it into the tree)
 */
static struct rm_inner *rm_spare_inner(struct rm_spares *sp)
{
        assert(sp->used < sp->n_inner);
        return sp->inner[sp->used++];
}

/**
 * rm_spares_free() - free the spares an update did not use
 * @sp: the spares
 */
static void rm_spares_free(struct rm_spares *sp)
{
        free(sp->leaf);
        sp->leaf = NULL;
        while (sp->n_inner > sp->used)
                free(sp->inner[--sp->n_inner]);
}

/**
 * rm_inner_insert() - add child @c right of the child a path took at @lvl
 * @m:   the map
 * @p:   path; @p->node[@lvl] gets @c after child @p->idx[@lvl]
 * @lvl: level of the node receiving @c (@p->height: @c gets a new root)
 * @key: gap key between the existing child and @c
 * @c:   new child, everything in it above @key
 * @sp:  preallocated nodes for the splits (rm_set_plan() counted them)
 *
 * A full node is split in two halves and its middle key moves up a level,
 * recursively; splitting the root adds a level.
 */
static void rm_inner_insert(mc_rangemap *m, struct rm_path *p, unsigned lvl, uint64_t key, void *c,
                            struct rm_spares *sp)
{
        uint64_t keys[RM_INNER_MAX];
        void *kids[RM_INNER_MAX + 1];
        struct rm_inner *in, *r;
        unsigned at, nl, i;

        if (lvl == p->height) {
                in = rm_spare_inner(sp);
                in->n = 2;
                in->level = lvl;
                in->key[0] = key;
                in->child[0] = m->root;
                in->child[1] = c;
                m->root = in;
                m->height++;
                m->inners++;
                return;
        }

        in = p->node[lvl];
        at = p->idx[lvl] + 1; /* @c's index; @key goes to at - 1 */
        if (in->n < RM_INNER_MAX) {
                memmove(&in->key[at], &in->key[at - 1], (in->n - at) * sizeof(in->key[0]));
                memmove(&in->child[at + 1], &in->child[at], (in->n - at) * sizeof(in->child[0]));
                in->key[at - 1] = key;
                in->child[at] = c;
                in->n++;
                return;
        }

        /* Full: lay out all RM_INNER_MAX + 1 children, keep the first nl. */
        for (i = 0; i < at; i++)
                kids[i] = in->child[i];
        kids[at] = c;
        for (i = at; i < RM_INNER_MAX; i++)
                kids[i + 1] = in->child[i];
        for (i = 0; i < at - 1; i++)
                keys[i] = in->key[i];
        keys[at - 1] = key;
        for (i = at - 1; i < RM_INNER_MAX - 1; i++)
                keys[i + 1] = in->key[i];

        nl = (RM_INNER_MAX + 1) - (RM_INNER_MAX + 1) / 2;
        r = rm_spare_inner(sp);
        m->inners++;
        r->level = lvl;
        r->n = RM_INNER_MAX + 1 - nl;
        in->n = nl;
        memcpy(in->child, kids, nl * sizeof(kids[0]));
        memcpy(in->key, keys, (nl - 1) * sizeof(keys[0]));
        memcpy(r->child, &kids[nl], r->n * sizeof(kids[0]));
        memcpy(r->key, &keys[nl], (r->n - 1) * sizeof(keys[0]));
        rm_inner_insert(m, p, lvl + 1, keys[nl - 1], r, sp);
}

/**
 * rm_insert() - insert 1 or 2 consecutive entries at a path's position
 * @m:   the map
 * @p:   path from rm_descend() at the first entry's start, unchanged since
 *       (an empty map: @p->leaf NULL)
 * @e:   the entries, in order, fitting between @p->pos - 1 and @p->pos
 * @cnt: 1 or 2
 * @sp:  preallocated nodes (rm_set_plan() counted what a split needs)
 */
static void rm_insert(mc_rangemap *m, struct rm_path *p, const struct rm_entry *e, unsigned cnt,
                      struct rm_spares *sp)
{
        struct rm_entry tmp[RM_LEAF_MAX + 2];
        struct rm_leaf *x = p->leaf, *r;
        unsigned total, nl, i;

        if (!x) {
                x = sp->leaf;
                sp->leaf = NULL;
                x->n = 0;
                x->level = 0;
                m->root = x;
                m->height = 1;
                m->leaves++;
                p->leaf = x;
                p->pos = 0;
                p->height = 1;
        }
        rm_widen(p, e[0].start, e[cnt - 1].end);
        m->count += cnt;

        if (x->n + cnt <= RM_LEAF_MAX) {
                rm_leaf_move(x, p->pos + cnt, x, p->pos, x->n - p->pos);
                for (i = 0; i < cnt; i++)
                        rm_leaf_put(x, p->pos + i, &e[i]);
                x->n += cnt;
                return;
        }

        /* Split: both halves get at least (RM_LEAF_MAX + 1) / 2 entries. */
        total = x->n + cnt;
        for (i = 0; i < p->pos; i++)
                tmp[i] = (struct rm_entry){ x->start[i], x->end[i], x->value[i] };
        for (i = 0; i < cnt; i++)
                tmp[p->pos + i] = e[i];
        for (i = p->pos; i < x->n; i++)
                tmp[i + cnt] = (struct rm_entry){ x->start[i], x->end[i], x->value[i] };

        nl = total - total / 2;
        r = sp->leaf;
        sp->leaf = NULL;
        m->leaves++;
        r->level = 0;
        r->n = total - nl;
        x->n = nl;
        for (i = 0; i < nl; i++)
                rm_leaf_put(x, i, &tmp[i]);
        for (i = nl; i < total; i++)
                rm_leaf_put(r, i - nl, &tmp[i]);
        rm_inner_insert(m, p, 1, r->start[0], r, sp);
}

/**
 * rm_inner_drop() - remove child @i + 1 and key @i of an inner node
 * @in: node
 * @i:  key index; the child right of it goes (freed by the caller)
 */
static void rm_inner_drop(struct rm_inner *in, unsigned i)
{
        memmove(&in->key[i], &in->key[i + 1], (in->n - 2 - i) * sizeof(in->key[0]));
        memmove(&in->child[i + 1], &in->child[i + 2], (in->n - 2 - i) * sizeof(in->child[0]));
        in->n--;
}

/**
 * rm_fix_inner() - restore an inner node's fill after it lost a child
 * @m:   the map
 * @p:   path through the node (its structure above @lvl still valid)
 * @lvl: level of the node @p->node[@lvl]
 *
 * The root gives way to its only child. Any other node below
 * RM_INNER_MIN children is merged with a sibling (preferring the left one)
 * through the parent's key when both fit in one node, which may leave the
 * parent short in turn; otherwise the two share their children evenly,
 * rotating through the parent's key.
 */
static void rm_fix_inner(mc_rangemap *m, const struct rm_path *p, unsigned lvl)
{
        struct rm_inner *x = p->node[lvl], *par, *l, *r;
        unsigned li, total, nl, k;
        uint64_t *sep;

        if (lvl == p->height - 1) {
                if (x->n == 1) {
                        m->root = x->child[0];
                        m->height--;
                        m->inners--;
                        free(x);
                }
                return;
        }
        if (x->n >= RM_INNER_MIN)
                return;

        par = p->node[lvl + 1];
        li = p->idx[lvl + 1] > 0 ? p->idx[lvl + 1] - 1 : 0;
        l = par->child[li];
        r = par->child[li + 1];
        sep = &par->key[li];

        if (l->n + r->n <= RM_INNER_MAX) {
                l->key[l->n - 1] = *sep;
                memcpy(&l->key[l->n], r->key, (r->n - 1) * sizeof(r->key[0]));
                memcpy(&l->child[l->n], r->child, r->n * sizeof(r->child[0]));
                l->n += r->n;
                free(r);
                m->inners--;
                rm_inner_drop(par, li);
                rm_fix_inner(m, p, lvl + 1);
                return;
        }

        total = l->n + r->n;
        nl = total - total / 2;
        if (l->n < nl) {
                /* r's first k children move to l's end, rotating through *sep */
                k = nl - l->n;
                l->key[l->n - 1] = *sep;
                memcpy(&l->key[l->n], r->key, (k - 1) * sizeof(r->key[0]));
                memcpy(&l->child[l->n], r->child, k * sizeof(r->child[0]));
                *sep = r->key[k - 1];
                memmove(r->key, &r->key[k], (r->n - 1 - k) * sizeof(r->key[0]));
                memmove(r->child, &r->child[k], (r->n - k) * sizeof(r->child[0]));
        } else {
                /* l's last k children move to r's front */
                k = l->n - nl;
                memmove(&r->key[k], r->key, (r->n - 1) * sizeof(r->key[0]));
                memmove(&r->child[k], r->child, r->n * sizeof(r->child[0]));
                r->key[k - 1] = *sep;
                memcpy(r->key, &l->key[l->n - k], (k - 1) * sizeof(l->key[0]));
                memcpy(r->child, &l->child[l->n - k], k * sizeof(l->child[0]));
                *sep = l->key[l->n - k - 1];
        }
        l->n = nl;
        r->n = total - nl;
}

/**
 * rm_fix_leaf() - restore a leaf's fill after it lost entries
 * @m: the map
 * @p: path to the leaf
 *
 * An empty root leaf is freed. Any other leaf below RM_LEAF_MIN entries is
 * merged with a sibling (preferring the left one) when both fit in one
 * leaf, then the parent is fixed; otherwise the two share their entries
 * evenly and the key between them becomes the right one's first start.
 */
static void rm_fix_leaf(mc_rangemap *m, const struct rm_path *p)
{
        struct rm_leaf *x = p->leaf, *l, *r;
        struct rm_inner *par;
        unsigned li, total, nl;

        if (p->height == 1) {
                if (x->n == 0) {
                        free(x);
                        m->root = NULL;
                        m->height = 0;
                        m->leaves--;
                }
                return;
        }
        if (x->n >= RM_LEAF_MIN)
                return;

        par = p->node[1];
        li = p->idx[1] > 0 ? p->idx[1] - 1 : 0;
        l = par->child[li];
        r = par->child[li + 1];

        if (l->n + r->n <= RM_LEAF_MAX) {
                rm_leaf_move(l, l->n, r, 0, r->n);
                l->n += r->n;
                free(r);
                m->leaves--;
                rm_inner_drop(par, li);
                rm_fix_inner(m, p, 1);
                return;
        }

        total = l->n + r->n;
        nl = total - total / 2;
        if (l->n < nl) {
                unsigned k = nl - l->n;

                rm_leaf_move(l, l->n, r, 0, k);
                rm_leaf_move(r, 0, r, k, r->n - k);
        } else {
                unsigned k = l->n - nl;

                rm_leaf_move(r, k, r, 0, r->n);
                rm_leaf_move(r, 0, l, nl, k);
        }
        l->n = nl;
        r->n = total - nl;
        par->key[li] = r->start[0];
}

/**
 * rm_remove_range() - remove every entry whose start is in [@lo, @hi)
 * @m:  the map
 * @lo: first start to remove
 * @hi: one past the last start to remove (> @lo)
 *
 * The caller guarantees that those entries lie inside [@lo, ...) entirely,
 * so the map stays ordered. One round per leaf the run touches, each
 * leaving a valid tree: O(log n + k) for k entries removed. Never
 * allocates.
 */
static void rm_remove_range(mc_rangemap *m, uint64_t lo, uint64_t hi)
{
        struct rm_path p;

        for (;;) {
                struct rm_leaf *x;
                unsigned i, j, n;

                rm_descend(m, lo, &p);
                x = p.leaf;
                if (!x)
                        return;
                i = lo ? rm_rank(x->start, x->n, lo - 1) : 0; /* first start >= lo */
                if (i == x->n) {
                        if (!rm_next_leaf(&p))
                                return;
                        x = p.leaf;
                        i = 0;
                }
                j = rm_rank(x->start, x->n, hi - 1); /* first start >= hi */
                if (j <= i)
                        return;
                n = x->n;
                rm_leaf_move(x, i, x, j, n - j);
                x->n -= j - i;
                m->count -= j - i;
                p.pos = i;
                rm_fix_leaf(m, &p);
                if (j < n)
                        return; /* the run ended inside this leaf */
        }
}

/**
 * rm_free_node() - free a subtree
 * @n:     subtree root, may be NULL
 * @level: its level (0: a leaf)
 */
static void rm_free_node(void *n, unsigned level)
{
        if (n && level > 0) {
                struct rm_inner *in = n;

                for (unsigned i = 0; i < in->n; i++)
                        rm_free_node(in->child[i], level - 1);
        }
        free(n);
}

/**
 * mc_rangemap_new() - create an empty map (see rangemap.h)
 * @ret: the new map, owned by the caller; untouched on failure
 *
 * An empty map is the struct alone: the first leaf comes with the first
 * range.
 *
 * Return: 0, -EINVAL without @ret, or -ENOMEM
 */
int mc_rangemap_new(mc_rangemap **ret)
{
        mc_rangemap *m;

        if (!ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *ret = m;
        return 0;
}

/**
 * mc_rangemap_free() - free a map and every node; accepts NULL
 * @m: the map
 *
 * Return: NULL
 */
mc_rangemap *mc_rangemap_free(mc_rangemap *m)
{
        if (!m)
                return NULL;
        rm_free_node(m->root, m->height ? m->height - 1 : 0);
        free(m);
        return NULL;
}

/**
 * mc_rangemap_clear() - free every node; the map is empty and usable again
 * @m: the map, may be NULL
 */
void mc_rangemap_clear(mc_rangemap *m)
{
        if (!m)
                return;
        rm_free_node(m->root, m->height ? m->height - 1 : 0);
        *m = (mc_rangemap){ .root = NULL };
}

/**
 * rm_build_fail() - free what a failed mc_rangemap_build() had built
 * @nodes:  subtree roots, freed with the array
 * @starts: the array of their first starts, freed
 * @done:   @nodes[0, @done) are at level @level
 * @from:   @nodes[@from, @to) are at level @level - 1 (not yet taken over
 *          by a node of @level); @done <= @from; empty when @level is 0
 * @to:     see @from
 * @level:  the level being built
 * Return: -ENOMEM
 */
static int rm_build_fail(void **nodes, uint64_t *starts, size_t done, size_t from, size_t to,
                         unsigned level)
{
        for (size_t i = 0; i < done; i++)
                rm_free_node(nodes[i], level);
        for (size_t i = from; i < to && level > 0; i++)
                rm_free_node(nodes[i], level - 1);
        free(nodes);
        free(starts);
        return -ENOMEM;
}

/**
 * mc_rangemap_build() - replace a map's content with sorted ranges (see rangemap.h)
 * @m: the map
 * @e: the ranges, in address order, borrowed
 * @n: how many
 *
 * Bottom-up: leaves filled in order, then each level of inner nodes over the
 * one below, until one node is left, the root. @n entries need
 * L = ceil(n / RM_LEAF_MAX) leaves; dealt out evenly, each gets n / L or one
 * more, which is at least RM_LEAF_MIN when L > 1 (n > (L - 1) RM_LEAF_MAX),
 * and likewise for the inner nodes of each level; the root, when it is an
 * inner node, has at least 2 children. The key between two children is the
 * start of the right one's first entry: in the gap, as the keys must be.
 * nodes[] holds the roots of the level being built in place of those of the
 * level below (node k of a level takes over nodes at indices >= k), and the
 * smallest start of each in starts[].
 *
 * Return: 0, -EINVAL, -ENOMEM (@m unchanged).
 */
int mc_rangemap_build(mc_rangemap *m, const struct mc_rangemap_range *e, size_t n)
{
        uint64_t *starts = NULL;
        void **nodes = NULL;
        size_t cur, n_leaves, n_inners = 0;
        unsigned level = 0;

        if (!m || (!e && n))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (e[i].start >= e[i].end || e[i].value == 0)
                        return -EINVAL;
                if (i > 0 && (e[i].start < e[i - 1].end ||
                              (e[i].start == e[i - 1].end && e[i].value == e[i - 1].value)))
                        return -EINVAL;
        }
        if (n == 0) {
                mc_rangemap_clear(m);
                return 0;
        }

        n_leaves = (n + RM_LEAF_MAX - 1) / RM_LEAF_MAX;
        nodes = calloc(n_leaves, sizeof(*nodes));
        starts = malloc(n_leaves * sizeof(*starts));
        if (!nodes || !starts)
                return rm_build_fail(nodes, starts, 0, 0, 0, 0);
        for (size_t j = 0, i = 0; j < n_leaves; j++) {
                unsigned cnt = (unsigned) (n / n_leaves + (j < n % n_leaves));
                struct rm_leaf *l = malloc(sizeof(*l));

                if (!l)
                        return rm_build_fail(nodes, starts, j, 0, 0, 0);
                l->n = cnt;
                l->level = 0;
                for (unsigned k = 0; k < cnt; k++, i++) {
                        l->start[k] = e[i].start;
                        l->end[k] = e[i].end;
                        l->value[k] = e[i].value;
                }
                nodes[j] = l;
                starts[j] = l->start[0];
        }

        for (cur = n_leaves; cur > 1; ) {
                size_t n_up = (cur + RM_INNER_MAX - 1) / RM_INNER_MAX, from = 0;

                level++;
                for (size_t k = 0; k < n_up; k++) {
                        unsigned cnt = (unsigned) (cur / n_up + (k < cur % n_up));
                        struct rm_inner *in = malloc(sizeof(*in));

                        if (!in) {
                                /* nodes[0, k) are this level's; nodes[from, cur) the level below's;
                                 * the leaves and inners counted so far belong to them. */
                                return rm_build_fail(nodes, starts, k, from, cur, level);
                        }
                        in->n = cnt;
                        in->level = level;
                        for (unsigned c = 0; c < cnt; c++) {
                                in->child[c] = nodes[from + c];
                                if (c > 0)
                                        in->key[c - 1] = starts[from + c];
                        }
                        starts[k] = starts[from];
                        nodes[k] = in;
                        from += cnt;
                        n_inners++;
                }
                cur = n_up;
        }

        /* Nothing below can fail: the old content goes, the new one comes. */
        mc_rangemap_clear(m);
        m->root = nodes[0];
        m->height = level + 1;
        m->count = n;
        m->leaves = n_leaves;
        m->inners = n_inners;
        free(nodes);
        free(starts);
        return 0;
}

/**
 * struct rm_plan - what mc_rangemap_set() will do, decided read-only
 * @s:        start of the stored range after merging (<= the new start)
 * @e:        end of it after merging (>= the new end)
 * @trim_l:   the entry straddling the new start, to end at it; or NULL
 * @trim_li:  its index in @trim_l
 * @trim_r:   the entry straddling the new end, to start at it; or NULL
 * @trim_ri:  its index in @trim_r
 * @covered:  some entry's start lies in [@s, @e) once trimmed
 * @hole:     one entry (@hole_e) straddles both ends: it is cut in two
 * @hole_e:   that entry as it was
 * @n_ins:    entries to insert (0, 1 or 2), at the path rm_set_plan() returns
 *
 * The insertion path is a separate variable, not a member: with the path
 * inside this struct, GCC 12.2 (Debian 12.2.0-14, -O1 and above) decided
 * through its IPA mod/ref summary that rm_descend() did not write it and
 * read the zeroes of the struct's initialiser instead (the splits then
 * lacked nodes; -fno-ipa-modref avoided it).
 */
struct rm_plan {
        uint64_t s, e;
        struct rm_leaf *trim_l, *trim_r;
        unsigned trim_li, trim_ri;
        bool covered;
        bool hole;
        struct rm_entry hole_e;
        unsigned n_ins;
};

/**
 * rm_set_plan() - the read-only phase of mc_rangemap_set()
 * @m:     the map
 * @start: new range start
 * @end:   new range end (> @start)
 * @value: new value
 * @pl:    filled with the plan
 * @ins:   filled with the insertion path if @pl->n_ins
 *
 * Return: 1 if the map needs changing, 0 if it already holds @value over
 * [@start, @end) (or 0 is set where nothing is stored)
 */
static int rm_set_plan(const mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value, struct rm_plan *pl,
                       struct rm_path *ins)
{
        struct rm_path it, itw;
        struct rm_entry a = { 0 }, pa = { 0 }, w = { 0 }, nx;
        bool has_a, has_pa = false, has_w;

        *pl = (struct rm_plan){ .s = start, .e = end };

        /* pa: the entry ending exactly at start; a: the first ending above it */
        has_a = rm_seek(m, start ? start - 1 : 0, &it);
        if (has_a && it.leaf->end[it.pos] == start) {
                has_pa = true;
                pa = rm_get_entry(&it);
                has_a = rm_next(&it);
        }
        if (has_a)
                a = rm_get_entry(&it);

        if (value == 0 && (!has_a || a.start >= end))
                return 0; /* nothing stored in the window */
        if (value != 0 && has_a && a.start <= start && a.end >= end && a.value == value)
                return 0; /* already there */

        if (has_a && a.start < start && a.end > end) {
                /* a hole in one entry of another value: trim it, add its tail (and the new range) */
                pl->hole = true;
                pl->hole_e = a;
                pl->trim_l = it.leaf;
                pl->trim_li = it.pos;
                pl->n_ins = value ? 2 : 1;
        } else {
                /* left side: a straddles start (trim or merge), or pa touches it (merge) */
                if (has_a && a.start < start) {
                        if (value != 0 && a.value == value) {
                                pl->s = a.start;
                        } else {
                                pl->trim_l = it.leaf;
                                pl->trim_li = it.pos;
                        }
                } else if (value != 0 && has_pa && pa.value == value) {
                        pl->s = pa.start;
                }

                /* some entry lies wholly inside [start, end)? it is a or the one after a */
                if (has_a && a.start >= start) {
                        pl->covered = a.end <= end;
                } else if (has_a) {
                        struct rm_path t = it;

                        pl->covered = rm_next(&t) && t.leaf->end[t.pos] <= end;
                }

                /* right side: w, the first entry ending at or above end */
                has_w = rm_seek(m, end - 1, &itw);
                if (has_w)
                        w = rm_get_entry(&itw);
                if (has_w && w.start < end && w.end > end) {
                        if (value != 0 && w.value == value) {
                                pl->e = w.end;
                        } else {
                                pl->trim_r = itw.leaf;
                                pl->trim_ri = itw.pos;
                        }
                } else if (value != 0) {
                        bool has_b = has_w;

                        if (has_w && w.start < end) /* w ends exactly at end: b is next */
                                has_b = rm_next(&itw);
                        if (has_b) {
                                nx = rm_get_entry(&itw);
                                if (nx.start == end && nx.value == value)
                                        pl->e = nx.end;
                        }
                }
                /* merged entries are covered by [s, e) too */
                pl->covered = pl->covered || pl->s < start || pl->e > end;
                pl->n_ins = value != 0 && !pl->covered;
        }

        if (pl->n_ins) {
                /* the insertion goes before an entry starting at start (trimmed to start at end) */
                rm_descend(m, start, ins);
                if (ins->pos > 0 && ins->leaf->start[ins->pos - 1] == start)
                        ins->pos--;
        }
        return 1;
}

/**
 * rm_spares_alloc() - allocate what the insertion of a plan can need
 * @m:  the map
 * @pl: the plan
 * @p:  its insertion path
 * @sp: filled with the nodes (rm_spares_free() the rest afterwards)
 *
 * A leaf splits only if it cannot take @pl->n_ins more entries; then each
 * full inner node above it splits too, and a new root is needed when the
 * splits reach the top.
 *
 * Return: 0, or -ENOMEM (nothing allocated)
 */
static int rm_spares_alloc(const mc_rangemap *m, const struct rm_plan *pl, const struct rm_path *p,
                           struct rm_spares *sp)
{
        unsigned need_inner = 0, lvl;

        *sp = (struct rm_spares){ .leaf = NULL };
        if (!pl->n_ins)
                return 0;
        if (p->leaf && p->leaf->n + pl->n_ins <= RM_LEAF_MAX)
                return 0;
        if (p->leaf) {
                for (lvl = 1; lvl < m->height && p->node[lvl]->n == RM_INNER_MAX; lvl++)
                        need_inner++;
                if (lvl == m->height) {
                        if (m->height >= RM_MAX_DEPTH)
                                return -ENOMEM; /* not reachable with any real amount of memory */
                        need_inner++; /* a new root */
                }
        }
        sp->leaf = malloc(sizeof(*sp->leaf));
        if (!sp->leaf)
                return -ENOMEM;
        for (; sp->n_inner < need_inner; sp->n_inner++) {
                sp->inner[sp->n_inner] = malloc(sizeof(*sp->inner[0]));
                if (!sp->inner[sp->n_inner]) {
                        rm_spares_free(sp);
                        return -ENOMEM;
                }
        }
        return 0;
}

/**
 * mc_rangemap_set() - give [@start, @end) the value @value (see rangemap.h)
 * @m:     the map
 * @start: first address
 * @end:   one past the last (> @start)
 * @value: the value, 0 removes
 *
 * The two phases of the top of the file: rm_set_plan() and
 * rm_spares_alloc(), which may fail and change nothing, then the
 * mutation, which cannot fail.
 *
 * Return: 0, -EINVAL, or -ENOMEM with the map unchanged
 */
int mc_rangemap_set(mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value)
{
        struct rm_spares sp;
        struct rm_plan pl;
        struct rm_path ins, p;
        int r;

        if (!m || start >= end)
                return -EINVAL;

        /* 1. Read only: what changes, and the nodes for it. */
        if (rm_set_plan(m, start, end, value, &pl, &ins) == 0)
                return 0;
        r = rm_spares_alloc(m, &pl, &ins, &sp);
        if (r < 0)
                return r;

        /* Nothing below can fail. 2a. A hole in one entry. */
        if (pl.hole) {
                struct rm_entry e[2];
                unsigned n = 0;

                pl.trim_l->end[pl.trim_li] = start;
                if (value != 0)
                        e[n++] = (struct rm_entry){ start, end, value };
                e[n++] = (struct rm_entry){ end, pl.hole_e.end, pl.hole_e.value };
                rm_insert(m, &ins, e, n, &sp);
                rm_spares_free(&sp);
                return 0;
        }

        /* 2b. Trim the entries straddling start and end; no key depends on it. */
        if (pl.trim_l)
                pl.trim_l->end[pl.trim_li] = start;
        if (pl.trim_r)
                pl.trim_r->start[pl.trim_ri] = end;

        if (value == 0) {
                /* 2c. Every entry starting in the window now lies inside it. */
                rm_remove_range(m, start, end);
        } else if (!pl.covered) {
                /* 2d. A new entry; ins is still valid: trims change no structure. */
                struct rm_entry e = { start, end, value };

                rm_insert(m, &ins, &e, 1, &sp);
        } else {
                /* 2e. Keep the first covered entry as the merged range, drop the rest. */
                uint64_t first;

                rm_descend(m, pl.s, &p);
                if (p.pos > 0 && p.leaf->start[p.pos - 1] == pl.s)
                        p.pos--;
                if (p.pos == p.leaf->n)
                        rm_next_leaf(&p);
                first = p.leaf->start[p.pos];
                assert(first < pl.e);
                if (first + 1 < pl.e)
                        rm_remove_range(m, first + 1, pl.e);

                rm_descend(m, first, &p);
                assert(p.pos > 0 && p.leaf->start[p.pos - 1] == first);
                p.pos--;
                rm_widen(&p, pl.s, pl.e);
                rm_leaf_put(p.leaf, p.pos, &(struct rm_entry){ pl.s, pl.e, value });
        }
        rm_spares_free(&sp);
        return 0;
}

/**
 * mc_rangemap_get() - the value at one address
 * @m:    the map
 * @addr: address
 *
 * One descent without a path; in the leaf, the last entry starting at or
 * below @addr is read whether or not it contains @addr, and a mask picks
 * its value or 0, so the outcome costs no branch.
 *
 * Return: the value, 0 where nothing is stored
 */
uint64_t mc_rangemap_get(const mc_rangemap *m, uint64_t addr)
{
        const struct rm_leaf *l;
        const void *n;
        uint64_t hit;
        unsigned i;

        assert(m);
        n = m->root;
        if (!n)
                return 0;
        for (unsigned lvl = m->height - 1; lvl > 0; lvl--) {
                const struct rm_inner *in = n;

                rm_prefetch(in->key, (in->n - 1) * sizeof(in->key[0]));
                n = in->child[rm_pick(in, addr)];
        }
        l = n;
        rm_prefetch(l->start, l->n * sizeof(l->start[0]));
        /* the last entry starting at or below addr, if it contains addr; without a branch */
        i = rm_rank(l->start, l->n, addr);
        i -= i > 0;
        hit = (uint64_t) 0 - (uint64_t) (l->start[i] <= addr && l->end[i] > addr);
        return l->value[i] & hit;
}

/**
 * mc_rangemap_walk() - call @fn for each run of equal value in a window
 * @m:        the map
 * @start:    window start
 * @end:      window end (> @start)
 * @fn:       callback (see rangemap.h); must not change @m
 * @userdata: passed to @fn
 *
 * Stored entries are maximal runs already (coalesced), so each is one call,
 * clipped to the window, with a call for each gap between them.
 *
 * Return: 0, -EINVAL, or the first non-zero value of @fn
 */
int mc_rangemap_walk(const mc_rangemap *m, uint64_t start, uint64_t end,
                     mc_rangemap_walk_fn fn, void *userdata)
{
        struct rm_path it;
        uint64_t pos = start;
        bool more;
        int r;

        if (!m || !fn || start >= end)
                return -EINVAL;

        for (more = rm_seek(m, start, &it); more && it.leaf->start[it.pos] < end; more = rm_next(&it)) {
                const struct rm_leaf *l = it.leaf;
                uint64_t s = l->start[it.pos] > pos ? l->start[it.pos] : pos;
                uint64_t e = l->end[it.pos] < end ? l->end[it.pos] : end;

                if (s > pos) {
                        r = fn(pos, s, 0, userdata);
                        if (r)
                                return r;
                }
                r = fn(s, e, l->value[it.pos], userdata);
                if (r)
                        return r;
                pos = e;
        }
        if (pos < end)
                return fn(pos, end, 0, userdata);
        return 0;
}

/**
 * mc_rangemap_any() - whether anything is stored in [@start, @end)
 * @m:     the map
 * @start: window start
 * @end:   window end
 *
 * Return: 1 if the first entry ending above @start starts below @end, else 0
 */
int mc_rangemap_any(const mc_rangemap *m, uint64_t start, uint64_t end)
{
        struct rm_path it;

        assert(m);
        if (start >= end)
                return 0;
        return rm_seek(m, start, &it) && it.leaf->start[it.pos] < end;
}

/**
 * mc_rangemap_bytes() - how many addresses of [@start, @end) hold @value
 * @m:     the map
 * @start: window start
 * @end:   window end
 * @value: the value; 0 counts the gaps (the window minus what is stored)
 *
 * Return: the count, 0 for an empty window
 */
uint64_t mc_rangemap_bytes(const mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value)
{
        struct rm_path it;
        uint64_t sum = 0;
        bool more;

        assert(m);
        if (start >= end)
                return 0;

        for (more = rm_seek(m, start, &it); more && it.leaf->start[it.pos] < end; more = rm_next(&it)) {
                const struct rm_leaf *l = it.leaf;
                uint64_t s = l->start[it.pos] > start ? l->start[it.pos] : start;
                uint64_t e = l->end[it.pos] < end ? l->end[it.pos] : end;

                if (value == 0 || l->value[it.pos] == value)
                        sum += e - s;
        }
        return value == 0 ? (end - start) - sum : sum;
}

/**
 * mc_rangemap_count() - number of stored ranges
 * @m: the map
 *
 * Return: the count, kept by every insertion and removal
 */
size_t mc_rangemap_count(const mc_rangemap *m)
{
        assert(m);
        return m->count;
}

/**
 * mc_rangemap_memory() - heap bytes of the map: struct and nodes
 * @m: the map
 *
 * Return: the sizes passed to malloc() for what the map holds now
 */
size_t mc_rangemap_memory(const mc_rangemap *m)
{
        assert(m);
        return sizeof(*m) + m->leaves * sizeof(struct rm_leaf) + m->inners * sizeof(struct rm_inner);
}

/**
 * struct rm_check - state of mc_rangemap_check()'s in-order traversal
 * @have_prev:  an entry was seen already
 * @prev_end:   end of the last entry seen
 * @prev_value: value of the last entry seen
 * @count:      entries seen
 * @leaves:     leaves seen
 * @inners:     inner nodes seen
 */
struct rm_check {
        bool have_prev;
        uint64_t prev_end, prev_value;
        size_t count, leaves, inners;
};

/**
 * rm_check_node() - verify a subtree in order (see mc_rangemap_check())
 * @c:     traversal state, updated
 * @node:  subtree root
 * @level: the level it must have (0: a leaf)
 * @root:  it is the tree's root (fill bounds differ)
 * @lo:    every start in the subtree must be >= @lo (the key on its left)
 * @hi:    every end in the subtree must be <= @hi (the key on its right)
 *
 * Return: 0, or -EUCLEAN on the first violation
 */
static int rm_check_node(struct rm_check *c, const void *node, unsigned level, bool root, uint64_t lo, uint64_t hi)
{
        if (!node)
                return -EUCLEAN;

        if (level == 0) {
                const struct rm_leaf *l = node;

                if (l->level != 0 || l->n == 0 || l->n > RM_LEAF_MAX || (!root && l->n < RM_LEAF_MIN))
                        return -EUCLEAN;
                for (unsigned i = 0; i < l->n; i++) {
                        if (l->start[i] >= l->end[i] || l->value[i] == 0)
                                return -EUCLEAN; /* empty, or a stored 0 */
                        if (l->start[i] < lo || l->end[i] > hi)
                                return -EUCLEAN; /* outside the keys around the leaf */
                        if (c->have_prev && c->prev_end > l->start[i])
                                return -EUCLEAN; /* out of order or overlapping */
                        if (c->have_prev && c->prev_end == l->start[i] && c->prev_value == l->value[i])
                                return -EUCLEAN; /* not coalesced */
                        c->have_prev = true;
                        c->prev_end = l->end[i];
                        c->prev_value = l->value[i];
                }
                c->count += l->n;
                c->leaves++;
                return 0;
        }

        const struct rm_inner *in = node;

        if (in->level != level || in->n > RM_INNER_MAX || in->n < (root ? 2 : RM_INNER_MIN))
                return -EUCLEAN;
        for (unsigned i = 0; i + 1 < in->n; i++)
                if (in->key[i] < lo || in->key[i] > hi || (i > 0 && in->key[i - 1] >= in->key[i]))
                        return -EUCLEAN;
        c->inners++;
        for (unsigned i = 0; i < in->n; i++) {
                int r = rm_check_node(c, in->child[i], level - 1, false, i > 0 ? in->key[i - 1] : lo,
                                      i + 1 < in->n ? in->key[i] : hi);

                if (r < 0)
                        return r;
        }
        return 0;
}

/**
 * mc_rangemap_check() - verify every invariant (see rangemap.h)
 * @m: the map
 *
 * Return: 0, or -EUCLEAN at the first violation
 */
int mc_rangemap_check(const mc_rangemap *m)
{
        struct rm_check c = { .have_prev = false };
        int r;

        if (!m)
                return -EUCLEAN;
        if (!m->root)
                return m->height == 0 && m->count == 0 && m->leaves == 0 && m->inners == 0 ? 0 : -EUCLEAN;
        if (m->height == 0 || m->height > RM_MAX_DEPTH)
                return -EUCLEAN;
        r = rm_check_node(&c, m->root, m->height - 1, true, 0, UINT64_MAX);
        if (r < 0)
                return r;
        if (c.count != m->count || c.leaves != m->leaves || c.inners != m->inners)
                return -EUCLEAN;
        return 0;
}
