/* ipc.c - being written (vmlab sum engineer) */
#include "vmlab.h"
void vmlab_open_ipc(lua_State *L);
void vmlab_open_ipc(lua_State *L) { (void)L; }
