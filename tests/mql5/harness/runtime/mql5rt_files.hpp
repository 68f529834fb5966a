// mql5rt_files.hpp - File* built-ins (part of mql5rt.hpp).
// Sandboxes: env MQL_FILES_DIR (MQL5/Files) and MQL_COMMON_DIR (Common/Files, selected by FILE_COMMON).
// Writes go through a stdio buffer, so they reach the disk on FileFlush/FileClose only: a process that
// is killed loses unflushed writes, as a terminal that crashes does.
#pragma once

namespace mql {

const int FILE_READ = 1;
const int FILE_WRITE = 2;
const int FILE_BIN = 4;
const int FILE_CSV = 8;
const int FILE_TXT = 16;
const int FILE_ANSI = 32;
const int FILE_UNICODE = 64;
const int FILE_SHARE_READ = 128;
const int FILE_SHARE_WRITE = 256;
const int FILE_REWRITE = 512;
const int FILE_COMMON = 4096;
// SEEK_SET/SEEK_CUR/SEEK_END come from <cstdio> and have the MQL5 values 0/1/2.

struct FileSlot {
    FILE *f = nullptr;
    int flags = 0;
};
const int FILE_MAX = 64;
inline FileSlot *file_table() {
    static FileSlot t[FILE_MAX + 1];
    return t;
}

// Resolves a sandboxed path; names with ".." or an absolute path are refused.
inline bool file_path(const string &name, int flags, std::string &out) {
    std::string n = to_std(name);
    for (auto &c : n)
        if (c == '\\') c = '/';
    if (n.empty() || n[0] == '/' || n.find("..") != std::string::npos) {
        set_err(ERR_WRONG_FILENAME);
        return false;
    }
    std::string dir = (flags & FILE_COMMON) ? env_str("MQL_COMMON_DIR", "mql5_common") : env_str("MQL_FILES_DIR", "mql5_files");
    out = dir + "/" + n;
    return true;
}
inline void make_dirs(const std::string &path) {
    for (size_t p = path.find('/', 1); p != std::string::npos; p = path.find('/', p + 1))
        ::mkdir(path.substr(0, p).c_str(), 0755);
}

// FILE_WRITE without FILE_READ truncates; FILE_READ|FILE_WRITE opens or creates without truncating.
inline int FileOpen(const string &name, int flags, short delimiter = u'\t', uint codepage = CP_ACP) {
    (void)delimiter;
    (void)codepage;
    std::string path;
    if (!file_path(name, flags, path)) return INVALID_HANDLE;
    make_dirs(path);
    const char *mode = nullptr;
    if ((flags & FILE_READ) && (flags & FILE_WRITE)) {
        FILE *probe = std::fopen(path.c_str(), "ab");
        if (probe) std::fclose(probe);
        mode = "r+b";
    } else if (flags & FILE_WRITE) {
        mode = "wb";
    } else if (flags & FILE_READ) {
        mode = "rb";
    } else {
        set_err(ERR_INVALID_PARAMETER);
        return INVALID_HANDLE;
    }
    FILE *f = std::fopen(path.c_str(), mode);
    if (!f) {
        set_err(errno == ENOENT ? ERR_FILE_NOT_EXIST : ERR_CANNOT_OPEN_FILE);
        return INVALID_HANDLE;
    }
    for (int h = 1; h <= FILE_MAX; ++h) {
        if (!file_table()[h].f) {
            file_table()[h].f = f;
            file_table()[h].flags = flags;
            return h;
        }
    }
    std::fclose(f);
    set_err(ERR_TOO_MANY_FILES);
    return INVALID_HANDLE;
}
inline FileSlot *file_get(int h) {
    if (h < 1 || h > FILE_MAX || !file_table()[h].f) {
        set_err(ERR_INVALID_FILEHANDLE);
        return nullptr;
    }
    return &file_table()[h];
}
inline void FileClose(int h) {
    FileSlot *s = file_get(h);
    if (!s) return;
    std::fclose(s->f);
    *s = FileSlot();
}
inline void FileFlush(int h) {
    FileSlot *s = file_get(h);
    if (s) {
        std::fflush(s->f);
        ::fsync(::fileno(s->f));
    }
}
inline bool FileSeek(int h, long offset, int origin) {
    FileSlot *s = file_get(h);
    if (!s) return false;
    return std::fseek(s->f, offset, origin == SEEK_END ? SEEK_END : (origin == SEEK_CUR ? SEEK_CUR : SEEK_SET)) == 0;
}
inline ulong FileTell(int h) {
    FileSlot *s = file_get(h);
    return s ? ulong(std::ftell(s->f)) : 0;
}
inline ulong FileSize(int h) {
    FileSlot *s = file_get(h);
    if (!s) return 0;
    long cur = std::ftell(s->f);
    std::fseek(s->f, 0, SEEK_END);
    long end = std::ftell(s->f);
    std::fseek(s->f, cur, SEEK_SET);
    return ulong(end);
}
inline bool FileIsEnding(int h) {
    FileSlot *s = file_get(h);
    if (!s) return true;
    int c = std::fgetc(s->f);
    if (c == EOF) return true;
    std::ungetc(c, s->f);
    return false;
}
// Reads up to count elements (whole array when count < 0) into the array from start; grows it.
inline uint FileReadArray(int h, Array<uchar> &arr, int start = 0, int count = WHOLE_ARRAY) {
    FileSlot *s = file_get(h);
    if (!s || start < 0) return 0;
    size_t want;
    if (count < 0) {
        long cur = std::ftell(s->f);
        std::fseek(s->f, 0, SEEK_END);
        long end = std::ftell(s->f);
        std::fseek(s->f, cur, SEEK_SET);
        want = size_t(end - cur);
    } else {
        want = size_t(count);
    }
    if (arr.v.size() < size_t(start) + want) arr.v.resize(size_t(start) + want);
    size_t n = want ? std::fread(arr.v.data() + start, 1, want, s->f) : 0;
    return uint(n);
}
inline uint FileWriteArray(int h, const Array<uchar> &arr, int start = 0, int count = WHOLE_ARRAY) {
    FileSlot *s = file_get(h);
    if (!s || start < 0 || size_t(start) > arr.v.size()) return 0;
    size_t n = (count < 0 || size_t(start) + size_t(count) > arr.v.size()) ? arr.v.size() - size_t(start) : size_t(count);
    size_t w = n ? std::fwrite(arr.v.data() + start, 1, n, s->f) : 0;
    if (w < n) set_err(ERR_FILE_WRITEERROR);
    return uint(w);
}
inline bool FileIsExist(const string &name, int common_flag = 0) {
    std::string path;
    if (!file_path(name, common_flag, path)) return false;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        set_err(ERR_FILE_NOT_EXIST);
        return false;
    }
    return S_ISREG(st.st_mode);
}
inline bool FileDelete(const string &name, int common_flag = 0) {
    std::string path;
    if (!file_path(name, common_flag, path)) return false;
    if (::unlink(path.c_str()) != 0) {
        set_err(ERR_FILE_NOT_EXIST);
        return false;
    }
    return true;
}
// Renames atomically; without FILE_REWRITE in mode_flags an existing target makes it fail.
inline bool FileMove(const string &src, int common_flag, const string &dst, int mode_flags) {
    std::string a, b;
    if (!file_path(src, common_flag, a) || !file_path(dst, mode_flags, b)) return false;
    struct stat st {};
    if (!(mode_flags & FILE_REWRITE) && ::stat(b.c_str(), &st) == 0) {
        set_err(ERR_FILE_CANNOT_REWRITE);
        return false;
    }
    make_dirs(b);
    if (::rename(a.c_str(), b.c_str()) != 0) {
        set_err(ERR_CANNOT_OPEN_FILE);
        return false;
    }
    return true;
}

}  // namespace mql
