// libarchive (Debian: libarchive-dev): streaming reads of webdataset tar shards.
#include <archive.h>
#include <archive_entry.h>
