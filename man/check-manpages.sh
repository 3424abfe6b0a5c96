#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# check-manpages.sh - keep the man pages rendering cleanly and in step with
# the code. Run by `make check` (automake protocol: exit 0 pass, 1 fail,
# 77 skip); top_srcdir and top_builddir come from the environment and
# default to the current directory.
#
# Checks:
#  1. every man/*.[1-8] renders without warnings under
#     `man --warnings -l -E UTF-8` and `groff -man -ww -z` (skipped, exit 77,
#     when groff is missing - the other checks still run and still fail);
#  2. the long options of `memconvd --help` and those of memconvd.8 are the
#     same set: each option in --help is documented under OPTIONS, each one
#     documented under OPTIONS is in --help, and any --option named elsewhere
#     in the page exists;
#  3. every function declared in lib/memconv.h appears in libmemconv.3, and
#     every mc_*() in its SYNOPSIS is declared in lib/memconv.h;
#  4. every `message X {` of proto/memconv.proto is described in
#     memconv-protocol.7, in a subsection of its own (.SS X);
#  5. every long option of `memconvctl --help` appears in memconvctl.8;
#  6. every (section, key) row of config_table in daemon/conffile.c is
#     documented in memconvd.conf.5: "Key=" appears, and so does "[Section]";
#  7. every man page in man/ is listed in dist_man_MANS of Makefile.am, and
#     every page listed there exists.

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
mandir=$top_srcdir/man

failures=0
checks=0
skipped_warnings=false

fail() {
        echo "FAIL: $*"
        failures=$((failures + 1))
}

# The text of a roff page with the escapes that matter for names undone:
# "\-" -> "-", "\(aq" -> "'", "\e" -> "\", font changes dropped.
page_text() {
        sed -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\f[BIRP]//g' -e 's/\\e/\\/g' "$1"
}

# ---------------------------------------------------------------- 1. warnings
shopt -s nullglob
pages=("$mandir"/*.[1-8])
shopt -u nullglob
if [ ${#pages[@]} -eq 0 ]; then
        fail "no man pages found in $mandir"
fi

if ! command -v groff >/dev/null 2>&1; then
        echo "SKIP: groff not installed (rendering warnings not checked)"
        skipped_warnings=true
else
        for page in "${pages[@]}"; do
                checks=$((checks + 1))
                out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1)
                if [ -n "$out" ]; then
                        fail "$page: groff -man -ww -z warns:"
                        printf '%s\n' "$out" | sed 's/^/    /'
                fi
                if command -v man >/dev/null 2>&1; then
                        checks=$((checks + 1))
                        out=$(MANWIDTH=80 MANPAGER=cat PAGER=cat LC_ALL=C.UTF-8 \
                              man --warnings -l -E UTF-8 "$page" 2>&1 >/dev/null)
                        if [ -n "$out" ]; then
                                fail "$page: man --warnings warns:"
                                printf '%s\n' "$out" | sed 's/^/    /'
                        fi
                fi
        done
fi

# ---------------------------------------------------------------- 2. memconvd options
page=$mandir/memconvd.8
daemon=$top_builddir/memconvd
if [ ! -f "$page" ]; then
        fail "$page is missing"
elif [ ! -x "$daemon" ]; then
        fail "$daemon is not built; cannot compare its --help with $page"
else
        help_opts=$("$daemon" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
        if [ -z "$help_opts" ]; then
                fail "$daemon --help lists no long options"
        fi
        # Options documented in the OPTIONS section: the tags of its .TP items.
        doc_opts=$(page_text "$page" |
                   awk '/^\.SH /{ in_opts = ($2 == "OPTIONS") ; next }
                        in_opts && prev ~ /^\.TP/ { print }
                        { prev = $0 }' |
                   grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
        all_opts=$(page_text "$page" | grep -v '^\.\\"' |
                   grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
        for o in $help_opts; do
                checks=$((checks + 1))
                if ! grep -qxF -- "$o" <<<"$doc_opts"; then
                        fail "option $o is in 'memconvd --help' but not documented under OPTIONS in memconvd.8"
                fi
        done
        for o in $doc_opts; do
                checks=$((checks + 1))
                if ! grep -qxF -- "$o" <<<"$help_opts"; then
                        fail "option $o is documented in memconvd.8 but not in 'memconvd --help'"
                fi
        done
        for o in $all_opts; do
                if ! grep -qxF -- "$o" <<<"$help_opts" && ! grep -qxF -- "$o" <<<"$doc_opts"; then
                        checks=$((checks + 1))
                        fail "memconvd.8 mentions $o, which 'memconvd --help' does not list"
                fi
        done
fi

# ---------------------------------------------------------------- 3. library functions
page=$mandir/libmemconv.3
header=$top_srcdir/lib/memconv.h
if [ ! -f "$page" ]; then
        fail "$page is missing"
elif [ ! -f "$header" ]; then
        fail "$header is missing"
else
        funcs=$(grep -E '^(int|void|mc_client \*)[^(]*\<mc_[a-z_]+\(' "$header" |
                sed -E 's/^[^(]*\<(mc_[a-z_]+)\(.*/\1/' | sort -u)
        if [ -z "$funcs" ]; then
                fail "no functions found in $header"
        fi
        text=$(page_text "$page")
        for f in $funcs; do
                checks=$((checks + 1))
                if ! grep -qw -- "$f" <<<"$text"; then
                        fail "function $f() is declared in lib/memconv.h but not documented in libmemconv.3"
                fi
        done
        synopsis=$(awk '/^\.SH /{ in_syn = ($2 == "SYNOPSIS"); next } in_syn' "$page" |
                   grep -oE '\<mc_[a-z_]+\(' | tr -d '(' | sort -u)
        for f in $synopsis; do
                checks=$((checks + 1))
                if ! grep -qxF -- "$f" <<<"$funcs"; then
                        fail "libmemconv.3 SYNOPSIS shows $f(), which lib/memconv.h does not declare"
                fi
        done
fi

# ---------------------------------------------------------------- 4. protocol messages
page=$mandir/memconv-protocol.7
proto=$top_srcdir/proto/memconv.proto
if [ ! -f "$page" ]; then
        fail "$page is missing"
elif [ ! -f "$proto" ]; then
        fail "$proto is missing"
else
        messages=$(sed -nE 's/^[[:space:]]*message[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*\{.*/\1/p' "$proto" | sort -u)
        if [ -z "$messages" ]; then
                fail "no messages found in $proto"
        fi
        # Each message is described in a subsection of its own: ".SS Name".
        headings=$(sed -nE 's/^\.SS[[:space:]]+"?([A-Za-z0-9_]+)"?[[:space:]]*$/\1/p' "$page")
        for m in $messages; do
                checks=$((checks + 1))
                if ! grep -qxF -- "$m" <<<"$headings"; then
                        fail "message $m of memconv.proto has no '.SS $m' subsection in memconv-protocol.7"
                fi
        done
fi

# ---------------------------------------------------------------- 5. memconvctl options
page=$mandir/memconvctl.8
ctl=$top_builddir/memconvctl
if [ ! -f "$page" ]; then
        fail "$page is missing"
elif [ ! -x "$ctl" ]; then
        fail "$ctl is not built; cannot compare its --help with $page"
else
        ctl_opts=$("$ctl" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
        if [ -z "$ctl_opts" ]; then
                fail "$ctl --help lists no long options"
        fi
        text=$(page_text "$page" | grep -v '^\.\\"')
        for o in $ctl_opts; do
                checks=$((checks + 1))
                if ! grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|\$)" <<<"$text"; then
                        fail "option $o is in 'memconvctl --help' but not documented in memconvctl.8"
                fi
        done
fi

# ---------------------------------------------------------------- 6. configuration keys
page=$mandir/memconvd.conf.5
config=$top_srcdir/daemon/conffile.c
if [ ! -f "$page" ]; then
        fail "$page is missing"
elif [ ! -f "$config" ]; then
        fail "$config is missing"
else
        # The rows of config_table: { "Section", "Key", parser, ... },
        rows=$(awk '/config_table\[\][[:space:]]*=/ { in_table = 1; next }
                    in_table && /^[[:space:]]*};/ { in_table = 0 }
                    in_table' "$config" |
               sed -nE 's/^[[:space:]]*\{[[:space:]]*"([A-Za-z0-9]+)"[[:space:]]*,[[:space:]]*"([A-Za-z0-9]+)"[[:space:]]*,.*/\1 \2/p')
        if [ -z "$rows" ]; then
                fail "no config_table rows found in $config"
        fi
        text=$(page_text "$page" | grep -v '^\.\\"')
        while read -r section key; do
                [ -n "$key" ] || continue
                checks=$((checks + 1))
                if ! grep -qE -- "(^|[^A-Za-z0-9])$key=" <<<"$text"; then
                        fail "key $key= of section [$section] (daemon/conffile.c config_table) is not documented in memconvd.conf.5"
                fi
                if ! grep -qF -- "[$section]" <<<"$text"; then
                        checks=$((checks + 1))
                        fail "section [$section] (daemon/conffile.c config_table) is not documented in memconvd.conf.5"
                fi
        done <<<"$rows"
fi

# ---------------------------------------------------------------- 7. dist_man_MANS
makefile=$top_srcdir/Makefile.am
if [ ! -f "$makefile" ]; then
        fail "$makefile is missing"
else
        # dist_man_MANS = a b \ (continuation lines) ...
        listed=$(awk '/^dist_man_MANS[[:space:]]*\+?=/ { on = 1; sub(/^[^=]*=/, "") }
                      on { line = $0; more = sub(/\\[[:space:]]*$/, "", line); print line; if (!more) on = 0 }' "$makefile" |
                 tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
        for page in "${pages[@]}"; do
                name=man/$(basename "$page")
                checks=$((checks + 1))
                if ! grep -qxF -- "$name" <<<"$listed"; then
                        fail "$name is not in dist_man_MANS of Makefile.am: it would be neither installed nor distributed; add it there"
                fi
        done
        for name in $listed; do
                checks=$((checks + 1))
                if [ ! -f "$top_srcdir/$name" ]; then
                        fail "$name is listed in dist_man_MANS of Makefile.am but does not exist"
                fi
        done
fi

# ---------------------------------------------------------------- result
if [ "$failures" -gt 0 ]; then
        echo "check-manpages: $failures of $checks checks failed"
        exit 1
fi
if $skipped_warnings; then
        echo "check-manpages: $checks cross-checks passed; rendering warnings skipped"
        exit 77
fi
echo "check-manpages: all $checks checks passed"
exit 0
