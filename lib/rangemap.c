// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rangemap.c - a map from 64-bit addresses to 64-bit values, stored as
 * coalesced ranges in a join-based AVL tree.
 *
 * Theory of operation
 *
 * Each stored range [start, end) with its non-zero value is one tree node,
 * keyed by start. Because stored ranges are disjoint and non-empty, ordering
 * the nodes by start also orders them by end, so "the first node whose end is
 * above addr" is an ordinary lower-bound search. The invariants of rangemap.h
 * (disjoint, non-empty, touching neighbours hold different values, 0 never
 * stored) hold between calls; mc_rangemap_check() verifies them together
 * with the AVL ones (every node's height is 1 + the taller child's, the two
 * children differ by at most 1) and the stored count.
 *
 * The tree is an AVL tree without parent links, built on one primitive,
 * join3(L, k, R): given trees L < k < R of any heights it returns a balanced
 * tree of all of them in O(|h(L) - h(R)| + 1) (Blelloch, Ferizovic, Sun,
 * "Just Join for Parallel Ordered Sets", SPAA 2016). split() cuts a tree at
 * a key in O(log n) using join3 on the way back up. mc_rangemap_set() is
 * then:
 *
 *   1. a read-only look-up that returns early when nothing changes and
 *      otherwise computes how many new nodes the update needs (at most two:
 *      a range strictly inside one stored range of another value splits it
 *      into left part, new range, right part); those are allocated first,
 *      so -ENOMEM leaves the map untouched;
 *   2. split at start and at end into L (start < @start), M (start in
 *      [@start, @end)) and R;
 *   3. trim the last node of L at @start (keeping any part beyond @end as a
 *      new node), keep the part of M's last node beyond @end by moving its
 *      start (a key change that keeps the order), free the rest of M in
 *      O(k);
 *   4. merge the new range with touching neighbours of equal value by
 *      moving their bounds, or insert a node for it;
 *   5. join the pieces back together.
 *
 * That makes set() O(log n + k) for k removed ranges, worst case, and every
 * look-up O(log n). In-order walks use an explicit stack bounded by the
 * maximum AVL height (RM_MAX_HEIGHT), so they cost O(log n + visited runs)
 * and no allocation.
 *
 * Memory: one 48-byte node per stored range (LP64) plus the map struct;
 * nothing is ever proportional to the size of the address space.
 *
 * Half-open ranges: [start, end) with end <= UINT64_MAX means the single
 * address UINT64_MAX can never be stored; it always reads as 0.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "rangemap.h"

/*
 * An AVL tree of height h has at least Fib(h + 2) - 1 nodes; with fewer
 * than 2^59 nodes of 48 bytes in a 64-bit address space, h < 86.
 */
#define RM_MAX_HEIGHT 96

/**
 * struct rm_node - one stored range
 * @start:  first address
 * @end:    one past the last address (> @start)
 * @value:  the value over the range (never 0)
 * @left:   subtree of ranges below @start, owned by this node
 * @right:  subtree of ranges above @end, owned by this node
 * @height: AVL height of the subtree rooted here (a leaf is 1)
 */
struct rm_node {
        uint64_t start;
        uint64_t end;
        uint64_t value;
        struct rm_node *left;
        struct rm_node *right;
        int height;
};

_Static_assert(sizeof(struct rm_node) <= 48, "rangemap node must fit in 48 bytes");

/**
 * struct mc_rangemap - the map
 * @root:  root of the AVL tree, owned
 * @count: number of nodes in the tree
 */
struct mc_rangemap {
        struct rm_node *root;
        size_t count;
};

/**
 * struct rm_iter - in-order iterator over a tree, no allocation
 * @stack: nodes still to visit, top is the current one (borrowed)
 * @depth: number of entries on @stack
 */
struct rm_iter {
        const struct rm_node *stack[RM_MAX_HEIGHT];
        unsigned depth;
};

/**
 * rm_height() - height of a subtree
 * @n: subtree root, may be NULL
 *
 * Return: 0 for NULL, else the stored height
 */
static int rm_height(const struct rm_node *n)
{
        return n ? n->height : 0;
}

/**
 * rm_mk() - make @k the root of @l and @r and fix its height
 * @l: left subtree (all below @k), may be NULL
 * @k: node to become the root
 * @r: right subtree (all above @k), may be NULL
 *
 * The caller guarantees the heights of @l and @r differ by at most 1.
 *
 * Return: @k
 */
static struct rm_node *rm_mk(struct rm_node *l, struct rm_node *k, struct rm_node *r)
{
        int hl = rm_height(l), hr = rm_height(r);

        k->left = l;
        k->right = r;
        k->height = 1 + (hl > hr ? hl : hr);
        return k;
}

/**
 * rm_rotate_left() - rotate @x left (its right child becomes the root)
 * @x: subtree root with a right child
 *
 * Return: the new subtree root
 */
static struct rm_node *rm_rotate_left(struct rm_node *x)
{
        struct rm_node *y = x->right;

        rm_mk(x->left, x, y->left);
        return rm_mk(x, y, y->right);
}

/**
 * rm_rotate_right() - rotate @x right (its left child becomes the root)
 * @x: subtree root with a left child
 *
 * Return: the new subtree root
 */
static struct rm_node *rm_rotate_right(struct rm_node *x)
{
        struct rm_node *y = x->left;

        rm_mk(y->right, x, x->right);
        return rm_mk(y->left, y, x);
}

/**
 * rm_join_right() - join3() when @tl is taller than @tr by 2 or more
 * @tl: left tree
 * @k:  middle node
 * @tr: right tree
 *
 * Descends the right spine of @tl to a subtree about as tall as @tr, puts
 * @k there, and rebalances on the way back up.
 *
 * Return: root of the joined tree
 */
static struct rm_node *rm_join_right(struct rm_node *tl, struct rm_node *k, struct rm_node *tr)
{
        struct rm_node *l = tl->left, *c = tl->right, *t;

        if (rm_height(c) <= rm_height(tr) + 1) {
                t = rm_mk(c, k, tr);
                if (rm_height(t) <= rm_height(l) + 1)
                        return rm_mk(l, tl, t);
                /* t is left-heavy: double rotation */
                return rm_rotate_left(rm_mk(l, tl, rm_rotate_right(t)));
        }

        t = rm_join_right(c, k, tr);
        rm_mk(l, tl, t);
        if (rm_height(t) <= rm_height(l) + 1)
                return tl;
        return rm_rotate_left(tl);
}

/**
 * rm_join_left() - join3() when @tr is taller than @tl by 2 or more
 * @tl: left tree
 * @k:  middle node
 * @tr: right tree
 *
 * Mirror image of rm_join_right().
 *
 * Return: root of the joined tree
 */
static struct rm_node *rm_join_left(struct rm_node *tl, struct rm_node *k, struct rm_node *tr)
{
        struct rm_node *r = tr->right, *c = tr->left, *t;

        if (rm_height(c) <= rm_height(tl) + 1) {
                t = rm_mk(tl, k, c);
                if (rm_height(t) <= rm_height(r) + 1)
                        return rm_mk(t, tr, r);
                /* t is right-heavy: double rotation */
                return rm_rotate_right(rm_mk(rm_rotate_left(t), tr, r));
        }

        t = rm_join_left(tl, k, c);
        rm_mk(t, tr, r);
        if (rm_height(t) <= rm_height(r) + 1)
                return tr;
        return rm_rotate_right(tr);
}

/**
 * rm_join3() - join two trees and a node between them into one AVL tree
 * @tl: left tree, every node below @k; may be NULL
 * @k:  middle node; its old links are ignored
 * @tr: right tree, every node above @k; may be NULL
 *
 * Return: root of the joined tree, which owns all nodes given
 */
static struct rm_node *rm_join3(struct rm_node *tl, struct rm_node *k, struct rm_node *tr)
{
        int hl = rm_height(tl), hr = rm_height(tr);

        if (hl > hr + 1)
                return rm_join_right(tl, k, tr);
        if (hr > hl + 1)
                return rm_join_left(tl, k, tr);
        return rm_mk(tl, k, tr);
}

/**
 * rm_remove_max() - detach the last node of a tree
 * @t:   non-empty tree
 * @ret: the detached node (its links are stale)
 *
 * Return: root of the remaining tree
 */
static struct rm_node *rm_remove_max(struct rm_node *t, struct rm_node **ret)
{
        struct rm_node *r;

        if (!t->right) {
                *ret = t;
                return t->left;
        }
        r = rm_remove_max(t->right, ret);
        return rm_join3(t->left, t, r);
}

/**
 * rm_remove_min() - detach the first node of a tree
 * @t:   non-empty tree
 * @ret: the detached node (its links are stale)
 *
 * Return: root of the remaining tree
 */
static struct rm_node *rm_remove_min(struct rm_node *t, struct rm_node **ret)
{
        struct rm_node *l;

        if (!t->left) {
                *ret = t;
                return t->right;
        }
        l = rm_remove_min(t->left, ret);
        return rm_join3(l, t, t->right);
}

/**
 * rm_join2() - concatenate two trees
 * @tl: left tree, every node below every node of @tr; may be NULL
 * @tr: right tree; may be NULL
 *
 * Return: root of the concatenation
 */
static struct rm_node *rm_join2(struct rm_node *tl, struct rm_node *tr)
{
        struct rm_node *k;

        if (!tl)
                return tr;
        tl = rm_remove_max(tl, &k);
        return rm_join3(tl, k, tr);
}

/**
 * rm_split() - cut a tree into the nodes starting below @key and the rest
 * @t:   tree, consumed
 * @key: the cut
 * @l:   nodes with start < @key
 * @r:   nodes with start >= @key
 */
static void rm_split(struct rm_node *t, uint64_t key, struct rm_node **l, struct rm_node **r)
{
        struct rm_node *a, *b;

        if (!t) {
                *l = *r = NULL;
                return;
        }
        if (key <= t->start) {
                rm_split(t->left, key, &a, &b);
                *l = a;
                *r = rm_join3(b, t, t->right);
        } else {
                rm_split(t->right, key, &a, &b);
                *l = rm_join3(t->left, t, a);
                *r = b;
        }
}

/**
 * rm_first() - first node of a tree
 * @t: tree, may be NULL
 *
 * Return: the node with the lowest start, or NULL
 */
static struct rm_node *rm_first(struct rm_node *t)
{
        while (t && t->left)
                t = t->left;
        return t;
}

/**
 * rm_last() - last node of a tree
 * @t: tree, may be NULL
 *
 * Return: the node with the highest start, or NULL
 */
static struct rm_node *rm_last(struct rm_node *t)
{
        while (t && t->right)
                t = t->right;
        return t;
}

/**
 * rm_lower_bound() - first node that ends above @addr
 * @t:    tree
 * @addr: address
 *
 * Return: the node containing @addr, else the first one above it, or NULL
 */
static struct rm_node *rm_lower_bound(struct rm_node *t, uint64_t addr)
{
        struct rm_node *best = NULL;

        while (t) {
                if (t->end > addr) {
                        best = t;
                        t = t->left;
                } else {
                        t = t->right;
                }
        }
        return best;
}

/**
 * rm_free_tree() - free every node of a tree
 * @t: tree, consumed; may be NULL
 *
 * Return: number of nodes freed
 */
static size_t rm_free_tree(struct rm_node *t)
{
        size_t n = 0;

        while (t) {
                struct rm_node *r = t->right;

                n += rm_free_tree(t->left) + 1;
                free(t);
                t = r; /* loop on the right spine, recurse on the left */
        }
        return n;
}

/**
 * rm_iter_seek() - position an iterator on the first node ending above @addr
 * @it:   iterator to fill
 * @t:    tree (borrowed for the iterator's lifetime; must not change)
 * @addr: address
 */
static void rm_iter_seek(struct rm_iter *it, const struct rm_node *t, uint64_t addr)
{
        it->depth = 0;
        while (t) {
                if (t->end > addr) {
                        assert(it->depth < RM_MAX_HEIGHT);
                        it->stack[it->depth++] = t;
                        t = t->left;
                } else {
                        t = t->right;
                }
        }
}

/**
 * rm_iter_peek() - current node of an iterator
 * @it: iterator
 *
 * Return: the current node, or NULL at the end
 */
static const struct rm_node *rm_iter_peek(const struct rm_iter *it)
{
        return it->depth ? it->stack[it->depth - 1] : NULL;
}

/**
 * rm_iter_next() - advance an iterator to the next node in address order
 * @it: iterator, not at the end
 */
static void rm_iter_next(struct rm_iter *it)
{
        const struct rm_node *t;

        assert(it->depth > 0);
        t = it->stack[--it->depth]->right;
        while (t) {
                assert(it->depth < RM_MAX_HEIGHT);
                it->stack[it->depth++] = t;
                t = t->left;
        }
}

/**
 * rm_node_init() - fill a detached node
 * @n:     node
 * @start: first address
 * @end:   one past the last
 * @value: value
 *
 * Return: @n, as a one-node tree
 */
static struct rm_node *rm_node_init(struct rm_node *n, uint64_t start, uint64_t end, uint64_t value)
{
        n->start = start;
        n->end = end;
        n->value = value;
        n->left = n->right = NULL;
        n->height = 1;
        return n;
}

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

mc_rangemap *mc_rangemap_free(mc_rangemap *m)
{
        if (!m)
                return NULL;
        rm_free_tree(m->root);
        free(m);
        return NULL;
}

void mc_rangemap_clear(mc_rangemap *m)
{
        if (!m)
                return;
        rm_free_tree(m->root);
        m->root = NULL;
        m->count = 0;
}

int mc_rangemap_set(mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value)
{
        struct rm_node *pre[2] = { NULL, NULL }, *a, *l, *mid, *r, *last, *rest = NULL, *n = NULL;
        unsigned need, used = 0, i;

        if (!m || start >= end)
                return -EINVAL;

        /* 1. Read-only: nothing to change? How many nodes will we need? */
        a = rm_lower_bound(m->root, start);
        if (value == 0) {
                if (!a || a->start >= end)
                        return 0;
        } else if (a && a->start <= start && a->end >= end && a->value == value) {
                return 0;
        }
        need = value != 0;
        if (a && a->start < start && a->end > end)
                need++; /* a is split in three: its tail needs a node */
        for (i = 0; i < need; i++) {
                pre[i] = malloc(sizeof(*pre[i]));
                if (!pre[i]) {
                        while (i--)
                                free(pre[i]);
                        return -ENOMEM;
                }
        }

        /* Nothing below can fail. 2. Split into l < [start, end) <= mid < r */
        rm_split(m->root, start, &l, &r);
        rm_split(r, end, &mid, &r);

        /* 3. Trim the range straddling start; keep what lies beyond end. */
        last = rm_last(l);
        if (last && last->end > start) {
                if (last->end > end) {
                        rest = rm_node_init(pre[used++], end, last->end, last->value);
                        m->count++;
                }
                last->end = start;
        }
        if (mid) {
                struct rm_node *b = rm_last(mid);

                if (b->end > end) {
                        /* nothing straddled both start and end, or mid would be empty */
                        assert(!rest);
                        mid = rm_remove_max(mid, &b);
                        rest = rm_node_init(b, end, b->end, b->value);
                }
                m->count -= rm_free_tree(mid);
        }

        /* 4. Merge with touching neighbours of equal value, or insert. */
        if (value != 0) {
                struct rm_node *c = rest ? rest : rm_first(r);
                int merge_l = last && last->end == start && last->value == value;
                int merge_r = c && c->start == end && c->value == value;

                if (merge_l && merge_r) {
                        last->end = c->end;
                        if (c == rest) {
                                rest = NULL;
                        } else {
                                r = rm_remove_min(r, &c);
                        }
                        free(c);
                        m->count--;
                } else if (merge_l) {
                        last->end = end;
                } else if (merge_r) {
                        c->start = start;
                } else {
                        n = rm_node_init(pre[used++], start, end, value);
                        m->count++;
                }
        }

        /* 5. Join the pieces back. */
        if (n)
                m->root = rm_join3(l, n, rest ? rm_join3(NULL, rest, r) : r);
        else if (rest)
                m->root = rm_join3(l, rest, r);
        else
                m->root = rm_join2(l, r);

        for (i = used; i < need; i++)
                free(pre[i]);
        return 0;
}

uint64_t mc_rangemap_get(const mc_rangemap *m, uint64_t addr)
{
        const struct rm_node *t;

        assert(m);
        for (t = m->root; t;) {
                if (addr < t->start)
                        t = t->left;
                else if (addr >= t->end)
                        t = t->right;
                else
                        return t->value;
        }
        return 0;
}

int mc_rangemap_walk(const mc_rangemap *m, uint64_t start, uint64_t end,
                     mc_rangemap_walk_fn fn, void *userdata)
{
        const struct rm_node *t;
        struct rm_iter it;
        uint64_t pos = start;
        int r;

        if (!m || !fn || start >= end)
                return -EINVAL;

        rm_iter_seek(&it, m->root, start);
        for (; (t = rm_iter_peek(&it)) && t->start < end; rm_iter_next(&it)) {
                uint64_t s = t->start > pos ? t->start : pos;
                uint64_t e = t->end < end ? t->end : end;

                if (s > pos) {
                        r = fn(pos, s, 0, userdata);
                        if (r)
                                return r;
                }
                r = fn(s, e, t->value, userdata);
                if (r)
                        return r;
                pos = e;
        }
        if (pos < end)
                return fn(pos, end, 0, userdata);
        return 0;
}

int mc_rangemap_any(const mc_rangemap *m, uint64_t start, uint64_t end)
{
        const struct rm_node *t;

        assert(m);
        if (start >= end)
                return 0;
        t = rm_lower_bound(m->root, start);
        return t && t->start < end;
}

uint64_t mc_rangemap_bytes(const mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value)
{
        const struct rm_node *t;
        struct rm_iter it;
        uint64_t sum = 0;

        assert(m);
        if (start >= end)
                return 0;

        rm_iter_seek(&it, m->root, start);
        for (; (t = rm_iter_peek(&it)) && t->start < end; rm_iter_next(&it)) {
                uint64_t s = t->start > start ? t->start : start;
                uint64_t e = t->end < end ? t->end : end;

                if (value == 0 || t->value == value)
                        sum += e - s;
        }
        return value == 0 ? (end - start) - sum : sum;
}

size_t mc_rangemap_count(const mc_rangemap *m)
{
        assert(m);
        return m->count;
}

size_t mc_rangemap_memory(const mc_rangemap *m)
{
        assert(m);
        return sizeof(*m) + m->count * sizeof(struct rm_node);
}

/**
 * rm_check_node() - verify a subtree in order (see mc_rangemap_check())
 * @t:      subtree root, may be NULL
 * @depth:  depth of @t (root is 1), bounds the recursion on a broken tree
 * @prev:   last node visited before @t's subtree, updated
 * @count:  nodes seen so far, updated
 * @height: the real height of @t's subtree
 *
 * Return: 0, or -EUCLEAN on the first violation
 */
static int rm_check_node(const struct rm_node *t, int depth, const struct rm_node **prev,
                         size_t *count, int *height)
{
        int hl, hr, r;

        if (!t) {
                *height = 0;
                return 0;
        }
        if (depth > RM_MAX_HEIGHT)
                return -EUCLEAN;

        r = rm_check_node(t->left, depth + 1, prev, count, &hl);
        if (r < 0)
                return r;

        if (t->start >= t->end || t->value == 0)
                return -EUCLEAN;
        if (*prev) {
                if ((*prev)->end > t->start)
                        return -EUCLEAN; /* out of order or overlapping */
                if ((*prev)->end == t->start && (*prev)->value == t->value)
                        return -EUCLEAN; /* not coalesced */
        }
        *prev = t;
        (*count)++;

        r = rm_check_node(t->right, depth + 1, prev, count, &hr);
        if (r < 0)
                return r;

        if (hl - hr > 1 || hr - hl > 1)
                return -EUCLEAN;
        *height = 1 + (hl > hr ? hl : hr);
        if (t->height != *height)
                return -EUCLEAN;
        return 0;
}

int mc_rangemap_check(const mc_rangemap *m)
{
        const struct rm_node *prev = NULL;
        size_t count = 0;
        int height, r;

        if (!m)
                return -EUCLEAN;
        r = rm_check_node(m->root, 1, &prev, &count, &height);
        if (r < 0)
                return r;
        if (count != m->count)
                return -EUCLEAN;
        return 0;
}
