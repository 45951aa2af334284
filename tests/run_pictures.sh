#!/usr/bin/env bash
# The pictures README.md shows. For every docs/NAME.png the README names (found anew on
# each run, so a new picture is checked as soon as the README shows it):
#   - `make docs` with quick settings writes NAME.png (into build/tests/pictures);
#   - that file is a valid PNG: signature, every chunk's CRC, the zlib stream and its
#     Adler-32, the filters (tests/png_check.c decodes it; C, so no Python is needed);
#   - it is not blank: more than one colour, and at least MIN_INK per thousand of its
#     pixels differ from the most common colour (the background);
#   - the committed docs/NAME.png, the file the README displays, is a valid PNG too.
# Exempt: docs/web_*.png. Those are screenshots of the browser lesson taken by the
# headless-browser test (make test-web), not pictures drawn by the examples, so no
# `make docs` command writes them.
# Also runs png_check's self-test of examples/png.h (font, text placement, ticks, a
# written picture decoded back). Prints ok/FAIL lines.
set -u
cd "$(dirname "$0")/.."
OUT=build/tests/pictures            # what `make docs` writes here is checked
B=build/tests/pictures_check        # the checker and the logs
MIN_INK=20
mkdir -p "$B"
rm -rf "$OUT"; mkdir -p "$OUT"

# the checker, built warning-free by both compilers (it includes examples/png.h whole)
built=1
for cc in gcc clang; do
    if $cc -std=c99 -O2 -Wall -Wextra -pedantic -Werror tests/png_check.c -o "$B/png_check_$cc" -lm >"$B/build_$cc.log" 2>&1; then
        echo "ok pictures_checker_builds_with_$cc"
    else
        echo "FAIL pictures_checker_builds_with_$cc"; sed 's/^/#   /' "$B/build_$cc.log" | head -20; built=0
    fi
done
[ "$built" -eq 1 ] || exit 0
CHECK=$B/png_check_gcc
"$CHECK" --self-test "$B"

pictures=$(grep -o 'docs/[A-Za-z0-9_.-]*\.png' README.md | sed 's|^docs/||' | sort -u)
drawn=$(grep -v '^web_' <<<"$pictures" || true)
if [ -z "$drawn" ]; then echo "FAIL readme_shows_pictures"; echo "#   README.md names no docs/*.png"; exit 0; fi
echo "ok readme_shows_pictures"

if make --no-print-directory docs DOCS_OUT="$OUT" DOCS_FLAGS=--quick >"$B/make_docs.log" 2>&1; then
    echo "ok pictures_make_docs_runs"
else
    echo "FAIL pictures_make_docs_runs"; tail -20 "$B/make_docs.log" | sed 's/^/#   /'
fi

for png in $drawn; do
    name=${png%.png}
    if [ ! -f "$OUT/$png" ]; then
        echo "FAIL picture_${name}_written_by_make_docs"
        echo "#   README.md shows docs/$png, but no command of \`make docs\` wrote $png:"
        echo "#   add the example that draws it to the Makefile's docs target, or take it out of README.md"
        continue
    fi
    echo "ok picture_${name}_written_by_make_docs"
    line=$("$CHECK" "$OUT/$png")
    case "$line" in
    png\ *)
        echo "ok picture_${name}_valid_png"
        read -r _ _ w h colours ink <<<"$line"
        if [ "$colours" -gt 1 ] && [ "$ink" -ge "$MIN_INK" ]; then
            echo "ok picture_${name}_not_blank"
        else
            echo "FAIL picture_${name}_not_blank"
            echo "#   $png: ${w}x${h}, $colours colours, $ink per thousand pixels off the background (need > 1 and >= $MIN_INK)"
        fi ;;
    *)
        echo "FAIL picture_${name}_valid_png"; echo "#   $line"
        echo "FAIL picture_${name}_not_blank" ;;
    esac
    if [ ! -f "docs/$png" ]; then
        echo "FAIL picture_${name}_committed"; echo "#   README.md shows docs/$png, which does not exist (run make docs)"
    elif line=$("$CHECK" "docs/$png"); then
        echo "ok picture_${name}_committed"
    else
        echo "FAIL picture_${name}_committed"; echo "#   $line"
    fi
done
