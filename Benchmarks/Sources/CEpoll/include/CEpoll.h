// epoll for ws-bench: Swift's Glibc module does not export <sys/epoll.h>.
#pragma once
#include <sys/epoll.h>
