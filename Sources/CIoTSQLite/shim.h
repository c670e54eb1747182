#ifndef CIOT_SQLITE_SHIM_H
#define CIOT_SQLITE_SHIM_H
// Only what Swift cannot import from <sqlite3.h>. No logic.
#include <sqlite3.h>
#endif
