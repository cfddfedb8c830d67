# Sourced (". validation/gpu_env.sh || exit 1") by the GPU scripts of validation/, from the
# repository root: makes PyCUDA importable from the wheels in .whl/ where it is not (the GPU
# machines' image has none; see ../shared/device/README.md), puts the source tree on
# PYTHONPATH and unbuffers Python's output.  A warm machine keeps /tmp/site: reused.
export PYTHONUNBUFFERED=1
if ! python3 -c "import pycuda.driver" >/dev/null 2>&1; then
  if [ -d /tmp/site/pycuda ]; then
    :
  elif ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
      || { echo "PyCUDA wheel install failed"; return 1; }
  else
    echo "PyCUDA not importable and no .whl/*.whl to install (see ../shared/device/README.md)"
  fi
  [ -d /tmp/site/pycuda ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
