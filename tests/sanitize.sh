#!/usr/bin/env bash
# The compiled kernel built with AddressSanitizer and UndefinedBehaviorSanitizer, in a temporary
# copy of the package (and its helpers for names, model/_names.c), running the differential tests
# (tests/ingest/test_kernel.py, tests/model/test_names.py) and a short fuzz
# run. Any out-of-bounds read or write, use after free or undefined behaviour stops it with a
# report. Needs gcc or clang with their sanitizer runtimes. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
cc=${CC:-gcc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -r mapreduce_logs tests benchmarks pyproject.toml "$work/"
find "$work/mapreduce_logs" -name '*.so' -delete
include=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
suffix=$("$python" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
for module in ingest/_kernel model/_names; do
    "$cc" -O1 -g -shared -fPIC -fsanitize=address,undefined -fno-omit-frame-pointer \
        -fno-sanitize-recover=all -I"$include" "mapreduce_logs/$module.c" \
        -o "$work/mapreduce_logs/$module$suffix"
done

# Python itself is not instrumented: the runtime is preloaded, leaks (the interpreter's own)
# are not reported, and every allocation goes through malloc so ASan sees the kernel's tables.
export LD_PRELOAD="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONMALLOC=malloc
export PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}"
export MAPREDUCE_LOGS_KERNEL=compiled
cd "$work"  # the copy, not the checkout, is first on the import path

for module in ingest._kernel model._names; do
    loaded=$("$python" -c "import mapreduce_logs.$module as k; print(k.__file__)")
    case "$loaded" in
        "$work"/*) ;;
        *) echo "sanitize: loaded $loaded, not the sanitized build" >&2; exit 1 ;;
    esac
done
"$python" -m pytest tests/ingest/test_kernel.py tests/model/test_names.py -q -p no:cacheprovider "$@"
"$python" -m benchmarks.fuzz_kernel --seconds "${FUZZ_SECONDS:-20}" --no-record
