/* cooperative_groups.h for the SIMT emulator (tests/csrc/simt/simt.h): the grid group
 * only, whose sync() is the emulator's grid barrier. */
#pragma once
namespace cooperative_groups {
struct grid_group {
    void sync() const { pp_simt_grid_sync(); }
};
inline grid_group this_grid() { return grid_group(); }
}  // namespace cooperative_groups
