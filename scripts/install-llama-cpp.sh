#!/usr/bin/env bash
# Builds llama-server and llama-quantize (CPU backend) from the llama.cpp source vendored in PyPI's llama-cpp-python
# sdist, into $LLMWATCH_CACHE/llama.cpp/bin/; a no-op once the stamp for this version is there.
set -euo pipefail

# llama-cpp-python 0.3.36 vendors llama.cpp at commit 0c1e57098 (its CHANGELOG), upstream's release b11312;
# docker-compose.yml's `llama` service runs the server image of the same release (LLAMA_CPP_RELEASE in .env.example).
LLAMA_CPP_PYTHON_VERSION="0.3.36"
LLAMA_CPP_COMMIT="0c1e57098"
LLAMA_CPP_BUILD_NUMBER="11312"

cd "$(dirname "$0")/.."
cache="${LLMWATCH_CACHE:-$HOME/.cache/llmwatch}"
root="$cache/llama.cpp"
bin="$root/bin"
jobs="${LLMWATCH_BUILD_JOBS:-2}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

stamp="$bin/.llmwatch-llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
if [ -f "$stamp" ] && [ -x "$bin/llama-server" ] && [ -x "$bin/llama-quantize" ]; then
  exit 0
fi

apt_install cmake:cmake g++:g++ make:make
mkdir -p "$root"
src="$root/src-$LLAMA_CPP_PYTHON_VERSION"
if [ ! -f "$src/CMakeLists.txt" ]; then
  say "llama.cpp source from the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
  dl="$root/sdist"
  rm -rf "$dl" "$src"
  mkdir -p "$dl"
  # The project's venv has pip (install.sh makes it first); Debian's own python3 may not.
  py="${LLMWATCH_VENV:-.venv}/bin/python"
  [ -x "$py" ] || py=python3
  "$py" -m pip download -q --no-binary :all: --no-deps -d "$dl" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  tar -xzf "$dl/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$dl"
  mv "$dl/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp" "$src"
  rm -rf "$dl"
fi

say "building llama-server and llama-quantize (CPU, Release, -j$jobs; about 12 min on 2 busy cores, once)"
build="$root/build-$LLAMA_CPP_PYTHON_VERSION"
# Every option that would fetch at build time is off: the web UI (prebuilt download and npm), TLS libraries,
# LLVM OpenMP; tests, examples and the unified app binary are not built.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_COMMIT="$LLAMA_CPP_COMMIT" -DLLAMA_BUILD_NUMBER="$LLAMA_CPP_BUILD_NUMBER" \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DGGML_OPENMP_FETCH=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
  ${LLMWATCH_LLAMA_CMAKE_ARGS:-} >"$root/cmake.log" 2>&1 || { tail -40 "$root/cmake.log" >&2; exit 1; }
# Compiler warnings go to the log, not the test run's output; on failure its tail is shown.
cmake --build "$build" --config Release -j "$jobs" --target llama-server llama-quantize >"$root/build.log" 2>&1 ||
  { tail -60 "$root/build.log" >&2; exit 1; }

mkdir -p "$bin"
rm -f "$bin"/.llmwatch-llama-cpp-python-*
cp "$build/bin/llama-server" "$build/bin/llama-quantize" "$bin/"
cp "$src/models/ggml-vocab-qwen2.gguf" "$bin/"
rm -rf "$build" "$src"
touch "$stamp"
say "llama.cpp done: $bin"
