// The header must compile as C++ too (extern "C" guards, no C-only constructs).
#include "vzdump_qemu.h"

int main()
{
    vzdump_qemu_peer *peer = nullptr;
    return vzdump_qemu_peer_new_path(nullptr, &peer, nullptr) == VZDUMP_QEMU_NULL_PARAMETER ? 0 : 1;
}
