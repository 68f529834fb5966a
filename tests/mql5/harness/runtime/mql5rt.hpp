// mql5rt.hpp - the harness's model of the MQL5 built-ins, for MQL5 sources translated to C++17
// by tests/mql5/harness/translate.py. Written for mtbridge; it shares no code with MetaQuotes.
// Every behaviour the real terminal leaves undocumented is modelled on its least forgiving
// reading; docs/mql5.md lists each assumption.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace mql {

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef long datetime;
typedef unsigned int color;

static_assert(sizeof(long) == 8, "the harness needs an LP64 target: MQL5 long is 64-bit");

// ---------------------------------------------------------------- fatal errors
[[noreturn]] inline void fatal(const char *what) {
    std::fprintf(stderr, "MQL5 critical runtime error: %s\n", what);
    std::fflush(stdout);
    std::fflush(stderr);
    std::abort();
}

// ---------------------------------------------------------------- last error
inline int &last_error() {
    static int e = 0;
    return e;
}
inline int GetLastError() { return last_error(); }
inline void ResetLastError() { last_error() = 0; }
inline void SetUserError(ushort code) { last_error() = 65536 + code; }
inline void set_err(int e) { last_error() = e; }

enum {
    ERR_SUCCESS = 0,
    ERR_INTERNAL_ERROR = 4001,
    ERR_INVALID_PARAMETER = 4003,
    ERR_NOT_ENOUGH_MEMORY = 4004,
    ERR_FUNCTION_NOT_ALLOWED = 4014,
    ERR_INVALID_ARRAY = 4006,
    ERR_ARRAY_RESIZE_ERROR = 4007,
    ERR_STRING_RESIZE_ERROR = 4008,
    ERR_TOO_MANY_FILES = 5001,
    ERR_WRONG_FILENAME = 5002,
    ERR_CANNOT_OPEN_FILE = 5004,
    ERR_FILE_CANNOT_REWRITE = 5020,
    ERR_INVALID_FILEHANDLE = 5007,
    ERR_FILE_NOT_EXIST = 5019,
    ERR_FILE_WRITEERROR = 5026,
    ERR_FILE_READERROR = 5010,
    ERR_NETSOCKET_INVALIDHANDLE = 5270,
    ERR_NETSOCKET_TOO_MANY_OPENED = 5271,
    ERR_NETSOCKET_CANNOT_CONNECT = 5272,
    ERR_NETSOCKET_IO_ERROR = 5273,
    ERR_NETSOCKET_HANDSHAKE_FAILED = 5274,
    ERR_NETSOCKET_NO_CERTIFICATE = 5275,
    ERR_TRADE_DISABLED = 4109,
};

const int INVALID_HANDLE = -1;
const int WHOLE_ARRAY = -1;
const double EMPTY_VALUE = DBL_MAX;
const int WRONG_VALUE = -1;
const int CHARTS_MAX = 100;
const uint CP_ACP = 0;
const uint CP_UTF8 = 65001;
const int INIT_SUCCEEDED = 0;
const int INIT_FAILED = 1;
const int INIT_PARAMETERS_INCORRECT = 2;
const int REASON_PROGRAM = 0;
const int REASON_REMOVE = 1;
const int REASON_RECOMPILE = 2;
const int REASON_CHARTCHANGE = 3;
const int REASON_CHARTCLOSE = 4;
const int REASON_PARAMETERS = 5;
const int REASON_ACCOUNT = 6;
const int REASON_TEMPLATE = 7;
const int REASON_INITFAILED = 8;
const int REASON_CLOSE = 9;

inline std::string env_str(const char *name, const char *dflt = "") {
    const char *v = std::getenv(name);
    return v ? std::string(v) : std::string(dflt);
}
inline bool env_flag(const char *name) {
    std::string v = env_str(name);
    return !v.empty() && v != "0" && v != "false";
}

// ---------------------------------------------------------------- UTF-16 string
class string {
  public:
    std::u16string s;
    string() {}
    string(const char16_t *p) : s(p) {}
    string(std::nullptr_t) {}
    explicit string(std::u16string v) : s(std::move(v)) {}
    string &operator+=(const string &o) {
        s += o.s;
        return *this;
    }
    friend string operator+(const string &a, const string &b) { return string(a.s + b.s); }
    friend bool operator==(const string &a, const string &b) { return a.s == b.s; }
    friend bool operator!=(const string &a, const string &b) { return a.s != b.s; }
    friend bool operator<(const string &a, const string &b) { return a.s < b.s; }
    friend bool operator>(const string &a, const string &b) { return a.s > b.s; }
    friend bool operator<=(const string &a, const string &b) { return a.s <= b.s; }
    friend bool operator>=(const string &a, const string &b) { return a.s >= b.s; }
};

// UTF-16 -> UTF-8 (unpaired surrogates become U+FFFD, as Windows' converter does).
inline std::string to_utf8(const std::u16string &w) {
    std::string out;
    out.reserve(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
        uint32_t c = w[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < w.size() && w[i + 1] >= 0xDC00 && w[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (w[i + 1] - 0xDC00);
            ++i;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        if (c < 0x80) {
            out += char(c);
        } else if (c < 0x800) {
            out += char(0xC0 | (c >> 6));
            out += char(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += char(0xE0 | (c >> 12));
            out += char(0x80 | ((c >> 6) & 0x3F));
            out += char(0x80 | (c & 0x3F));
        } else {
            out += char(0xF0 | (c >> 18));
            out += char(0x80 | ((c >> 12) & 0x3F));
            out += char(0x80 | ((c >> 6) & 0x3F));
            out += char(0x80 | (c & 0x3F));
        }
    }
    return out;
}

// UTF-8 -> UTF-16; each invalid sequence becomes U+FFFD.
inline std::u16string from_utf8(const unsigned char *p, size_t n) {
    std::u16string out;
    out.reserve(n);
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i];
        size_t len = 0;
        uint32_t minv = 0;
        if (c < 0x80) {
            out += char16_t(c);
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, c &= 0x1F, minv = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, c &= 0x0F, minv = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, c &= 0x07, minv = 0x10000;
        } else {
            out += char16_t(0xFFFD);
            ++i;
            continue;
        }
        size_t k = 1;
        for (; k < len && i + k < n && (p[i + k] & 0xC0) == 0x80; ++k) c = (c << 6) | (p[i + k] & 0x3F);
        if (k < len || c < minv || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            out += char16_t(0xFFFD);
            i += k;
            continue;
        }
        i += len;
        if (c >= 0x10000) {
            c -= 0x10000;
            out += char16_t(0xD800 + (c >> 10));
            out += char16_t(0xDC00 + (c & 0x3FF));
        } else {
            out += char16_t(c);
        }
    }
    return out;
}
inline string from_std(const std::string &u8) {
    return string(from_utf8(reinterpret_cast<const unsigned char *>(u8.data()), u8.size()));
}
inline std::string to_std(const string &s) { return to_utf8(s.s); }

// ---------------------------------------------------------------- arrays
template <class T>
class Array {
    static_assert(!std::is_same<T, bool>::value, "bool arrays are outside the harness subset");

  public:
    std::vector<T> v;
    Array() {}
    Array(std::initializer_list<T> l) : v(l) {}
    T &operator[](long i) {
        if (i < 0 || i >= long(v.size())) fatal("array out of range");
        return v[size_t(i)];
    }
    const T &operator[](long i) const {
        if (i < 0 || i >= long(v.size())) fatal("array out of range");
        return v[size_t(i)];
    }
};

template <class T, long N>
struct SArray {
    T v[N];
    T &operator[](long i) {
        if (i < 0 || i >= N) fatal("array out of range");
        return v[i];
    }
    const T &operator[](long i) const {
        if (i < 0 || i >= N) fatal("array out of range");
        return v[i];
    }
};

template <class T>
int ArraySize(const Array<T> &a) {
    return int(a.v.size());
}
template <class T, long N>
int ArraySize(const SArray<T, N> &) {
    return int(N);
}
template <class T>
int ArrayResize(Array<T> &a, int n, int reserve = 0) {
    if (n < 0) {
        set_err(ERR_ARRAY_RESIZE_ERROR);
        return -1;
    }
    if (reserve > 0 && a.v.capacity() < size_t(n) + size_t(reserve)) a.v.reserve(size_t(n) + size_t(reserve));
    a.v.resize(size_t(n));
    return n;
}
template <class T>
void ArrayFree(Array<T> &a) {
    std::vector<T>().swap(a.v);
}
template <class T>
bool ArrayIsDynamic(const Array<T> &) {
    return true;
}
template <class T, class V>
void ArrayInitialize(Array<T> &a, V value) {
    for (auto &x : a.v) x = T(value);
}
template <class T, long N, class V>
void ArrayInitialize(SArray<T, N> &a, V value) {
    for (long i = 0; i < N; ++i) a.v[i] = T(value);
}
template <class T, class V>
void ArrayFill(Array<T> &a, int start, int count, V value) {
    if (start < 0 || count < 0) fatal("ArrayFill: negative range");
    if (size_t(start) + size_t(count) > a.v.size()) a.v.resize(size_t(start) + size_t(count));
    for (int i = 0; i < count; ++i) a.v[size_t(start + i)] = T(value);
}
// ArrayCopy: grows a dynamic destination, never shrinks it; returns elements copied.
template <class T>
int ArrayCopy(Array<T> &dst, const Array<T> &src, int dst_start = 0, int src_start = 0, int count = WHOLE_ARRAY) {
    if (dst_start < 0 || src_start < 0) return 0;
    int avail = int(src.v.size()) - src_start;
    if (avail <= 0) return 0;
    int n = (count < 0 || count > avail) ? avail : count;
    if (size_t(dst_start) + size_t(n) > dst.v.size()) dst.v.resize(size_t(dst_start) + size_t(n));
    if (&dst == &src) {
        std::vector<T> tmp(src.v.begin() + src_start, src.v.begin() + src_start + n);
        std::copy(tmp.begin(), tmp.end(), dst.v.begin() + dst_start);
    } else {
        std::copy(src.v.begin() + src_start, src.v.begin() + src_start + n, dst.v.begin() + dst_start);
    }
    return n;
}
template <class T, long N>
int ArrayCopy(Array<T> &dst, const SArray<T, N> &src, int dst_start = 0, int src_start = 0,
              int count = WHOLE_ARRAY) {
    Array<T> tmp;
    tmp.v.assign(src.v, src.v + N);
    return ArrayCopy(dst, tmp, dst_start, src_start, count);
}
template <class T>
bool ArrayRemove(Array<T> &a, int start, int count = WHOLE_ARRAY) {
    if (start < 0 || size_t(start) > a.v.size()) return false;
    size_t n = (count < 0 || size_t(start) + size_t(count) > a.v.size()) ? a.v.size() - size_t(start) : size_t(count);
    a.v.erase(a.v.begin() + start, a.v.begin() + start + long(n));
    return true;
}

// ---------------------------------------------------------------- string functions
inline int StringLen(const string &s) { return int(s.s.size()); }
inline string StringSubstr(const string &s, int start, int length = -1) {
    if (start < 0 || size_t(start) >= s.s.size()) return string();
    size_t n = (length < 0) ? std::u16string::npos : size_t(length);
    return string(s.s.substr(size_t(start), n));
}
inline int StringFind(const string &s, const string &match, int start = 0) {
    if (start < 0) start = 0;
    size_t p = s.s.find(match.s, size_t(start));
    return p == std::u16string::npos ? -1 : int(p);
}
inline ushort StringGetCharacter(const string &s, int pos) {
    if (pos < 0 || size_t(pos) >= s.s.size()) {
        set_err(ERR_INVALID_PARAMETER);
        return 0;
    }
    return ushort(s.s[size_t(pos)]);
}
inline bool StringSetCharacter(string &s, int pos, ushort c) {
    if (pos < 0 || size_t(pos) > s.s.size()) return false;
    if (size_t(pos) == s.s.size())
        s.s.push_back(char16_t(c));
    else
        s.s[size_t(pos)] = char16_t(c);
    return true;
}
inline bool StringAdd(string &s, const string &add) {
    s.s += add.s;
    return true;
}
inline bool StringInit(string &s, int len = 0, ushort c = 0) {
    s.s.assign(size_t(len < 0 ? 0 : len), char16_t(c));
    return true;
}
// Case mapping covers ASCII and Latin-1 letters only (the harness's assumption).
inline bool StringToLower(string &s) {
    for (auto &c : s.s)
        if ((c >= u'A' && c <= u'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7)) c = char16_t(c + 32);
    return true;
}
inline bool StringToUpper(string &s) {
    for (auto &c : s.s)
        if ((c >= u'a' && c <= u'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7)) c = char16_t(c - 32);
    return true;
}
inline int StringTrimLeft(string &s) {
    size_t i = 0;
    while (i < s.s.size() && (s.s[i] == u' ' || s.s[i] == u'\t' || s.s[i] == u'\r' || s.s[i] == u'\n')) ++i;
    s.s.erase(0, i);
    return int(i);
}
inline int StringTrimRight(string &s) {
    size_t n = s.s.size(), k = n;
    while (k > 0 && (s.s[k - 1] == u' ' || s.s[k - 1] == u'\t' || s.s[k - 1] == u'\r' || s.s[k - 1] == u'\n')) --k;
    s.s.erase(k);
    return int(n - k);
}
inline int StringReplace(string &s, const string &find, const string &repl) {
    if (find.s.empty()) return -1;
    int count = 0;
    size_t p = 0;
    while ((p = s.s.find(find.s, p)) != std::u16string::npos) {
        s.s.replace(p, find.s.size(), repl.s);
        p += repl.s.size();
        ++count;
    }
    return count;
}
inline int StringSplit(const string &s, ushort sep, Array<string> &result) {
    result.v.clear();
    if (s.s.empty()) return 0;
    size_t start = 0;
    for (;;) {
        size_t p = s.s.find(char16_t(sep), start);
        if (p == std::u16string::npos) {
            result.v.push_back(string(s.s.substr(start)));
            break;
        }
        result.v.push_back(string(s.s.substr(start, p - start)));
        start = p + 1;
    }
    return int(result.v.size());
}
inline int StringCompare(const string &a, const string &b, bool case_sensitive = true) {
    string x = a, y = b;
    if (!case_sensitive) {
        StringToLower(x);
        StringToLower(y);
    }
    return x.s < y.s ? -1 : (x.s > y.s ? 1 : 0);
}
inline string ShortToString(ushort c) { return string(std::u16string(1, char16_t(c))); }
inline string CharToString(uchar c) { return string(std::u16string(1, char16_t(c))); }

inline string IntegerToString(long v, int len = 0, ushort fill = u' ') {
    std::string d = std::to_string(v);
    std::u16string w(d.begin(), d.end());
    if (len > 0 && w.size() < size_t(len)) w.insert(0, size_t(len) - w.size(), char16_t(fill));
    return string(w);
}
inline string DoubleToString(double v, int digits = 8) {
    char buf[512];
    if (std::isnan(v)) return string(u"nan");
    if (std::isinf(v)) return string(v > 0 ? u"inf" : u"-inf");
    if (digits >= 0 && digits <= 16)
        std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    else if (digits < 0 && digits >= -16)
        std::snprintf(buf, sizeof buf, "%.*e", -digits, v);
    else
        std::snprintf(buf, sizeof buf, "%.8f", v);
    return from_std(buf);
}
inline long StringToInteger(const string &s) {
    std::string u = to_std(s);
    return std::strtol(u.c_str(), nullptr, 10);
}
inline double StringToDouble(const string &s) {
    std::string u = to_std(s);
    return std::strtod(u.c_str(), nullptr);
}

// Conversion of a string to bytes. count < 0 converts up to the end of the text and appends the NUL;
// a dynamic array is grown when too small and never shrunk; returns the number of bytes written.
inline int StringToCharArray(const string &text, Array<uchar> &arr, int start = 0, int count = -1,
                             uint codepage = CP_ACP) {
    if (start < 0) start = 0;
    std::u16string part;
    bool nul = count < 0;
    if (size_t(start) <= text.s.size()) part = text.s.substr(size_t(start), count < 0 ? std::u16string::npos : size_t(count));
    std::string bytes;
    if (codepage == CP_UTF8) {
        bytes = to_utf8(part);
    } else {
        for (char16_t c : part) bytes += char(c < 0x100 ? c : u'?');
    }
    if (nul) bytes += '\0';
    if (arr.v.size() < bytes.size()) arr.v.resize(bytes.size());
    std::memcpy(arr.v.data(), bytes.data(), bytes.size());
    return int(bytes.size());
}
// Stops at the first NUL.
inline string CharArrayToString(const Array<uchar> &arr, int start = 0, int count = -1, uint codepage = CP_ACP) {
    if (start < 0 || size_t(start) >= arr.v.size()) return string();
    size_t end = (count < 0 || size_t(start) + size_t(count) > arr.v.size()) ? arr.v.size() : size_t(start + count);
    size_t z = start;
    while (z < end && arr.v[z] != 0) ++z;
    if (codepage == CP_UTF8) return string(from_utf8(arr.v.data() + start, z - size_t(start)));
    std::u16string w;
    for (size_t i = size_t(start); i < z; ++i) w += char16_t(arr.v[i]);
    return string(w);
}
inline string ShortArrayToString(const Array<ushort> &arr, int start = 0, int count = -1) {
    if (start < 0 || size_t(start) >= arr.v.size()) return string();
    size_t end = (count < 0 || size_t(start) + size_t(count) > arr.v.size()) ? arr.v.size() : size_t(start + count);
    std::u16string w;
    for (size_t i = size_t(start); i < end && arr.v[i] != 0; ++i) w += char16_t(arr.v[i]);
    return string(w);
}
inline int StringToShortArray(const string &text, Array<ushort> &arr, int start = 0, int count = -1) {
    if (start < 0) start = 0;
    std::u16string part;
    if (size_t(start) <= text.s.size()) part = text.s.substr(size_t(start), count < 0 ? std::u16string::npos : size_t(count));
    size_t n = part.size() + (count < 0 ? 1 : 0);
    if (arr.v.size() < n) arr.v.resize(n);
    for (size_t i = 0; i < part.size(); ++i) arr.v[i] = ushort(part[i]);
    if (count < 0) arr.v[part.size()] = 0;
    return int(n);
}

// ---------------------------------------------------------------- formatting (Print, StringFormat)
struct FmtArg {
    enum Kind { I, U, D, S, B } kind;
    long i = 0;
    unsigned long u = 0;
    double d = 0;
    std::string s;
};
inline FmtArg fmt_arg(bool v) { FmtArg a{FmtArg::B}; a.i = v; return a; }
inline FmtArg fmt_arg(const string &v) { FmtArg a{FmtArg::S}; a.s = to_std(v); return a; }
inline FmtArg fmt_arg(const char16_t *v) { return fmt_arg(string(v)); }
inline FmtArg fmt_arg(double v) { FmtArg a{FmtArg::D}; a.d = v; return a; }
inline FmtArg fmt_arg(float v) { return fmt_arg(double(v)); }
template <class T>
typename std::enable_if<std::is_integral<T>::value || std::is_enum<T>::value, FmtArg>::type fmt_arg(T v) {
    FmtArg a{FmtArg::I};
    if (std::is_unsigned<T>::value && sizeof(T) == 8) {
        a.kind = FmtArg::U;
        a.u = (unsigned long)v;
    } else {
        a.i = long(v);
    }
    return a;
}

inline std::string print_repr(const FmtArg &a) {
    char buf[64];
    switch (a.kind) {
        case FmtArg::I: return std::to_string(a.i);
        case FmtArg::U: return std::to_string(a.u);
        case FmtArg::B: return a.i ? "true" : "false";
        case FmtArg::S: return a.s;
        case FmtArg::D: std::snprintf(buf, sizeof buf, "%.16g", a.d); return buf;
    }
    return "";
}

inline std::string format_impl(const std::string &f, const std::vector<FmtArg> &args) {
    std::string out;
    size_t ai = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '%') {
            out += f[i];
            continue;
        }
        if (i + 1 < f.size() && f[i + 1] == '%') {
            out += '%';
            ++i;
            continue;
        }
        size_t j = i + 1;
        std::string spec = "%";
        while (j < f.size() && std::strchr("-+ #0", f[j])) spec += f[j++];
        while (j < f.size() && (std::isdigit((unsigned char)f[j]) || f[j] == '.')) spec += f[j++];
        while (j < f.size() && std::strchr("hlLqI6", f[j])) ++j;  // length modifiers are implied by the argument
        if (j >= f.size()) break;
        char conv = f[j];
        i = j;
        if (ai >= args.size()) break;
        const FmtArg &a = args[ai++];
        char buf[512];
        if (std::strchr("diouxXc", conv)) {
            spec += (conv == 'c') ? "c" : (std::string("l") + conv);
            if (conv == 'c') {
                out += to_utf8(std::u16string(1, char16_t(a.i)));
                continue;
            }
            long iv = a.kind == FmtArg::D ? long(a.d) : (a.kind == FmtArg::U ? long(a.u) : a.i);
            std::snprintf(buf, sizeof buf, spec.c_str(), iv);
            out += buf;
        } else if (std::strchr("feEgGaA", conv)) {
            spec += conv;
            double dv = a.kind == FmtArg::D ? a.d : (a.kind == FmtArg::U ? double(a.u) : double(a.i));
            std::snprintf(buf, sizeof buf, spec.c_str(), dv);
            out += buf;
        } else if (conv == 's') {
            spec += 's';
            std::string sv = print_repr(a);
            std::vector<char> big(sv.size() + 256);
            std::snprintf(big.data(), big.size(), spec.c_str(), sv.c_str());
            out += big.data();
        }
    }
    return out;
}
template <class... A>
string StringFormat(const string &fmt, const A &...args) {
    std::vector<FmtArg> v{fmt_arg(args)...};
    return from_std(format_impl(to_std(fmt), v));
}

inline FILE *&log_file() {
    static FILE *f = nullptr;
    return f;
}
template <class... A>
void Print(const A &...args) {
    std::vector<FmtArg> v{fmt_arg(args)...};
    std::string line;
    for (auto &a : v) line += print_repr(a);
    std::fprintf(stdout, "%s\n", line.c_str());
    std::fflush(stdout);
    if (log_file()) {
        std::fprintf(log_file(), "%s\n", line.c_str());
        std::fflush(log_file());
    }
}
template <class... A>
void PrintFormat(const string &fmt, const A &...args) {
    Print(StringFormat(fmt, args...));
}
template <class... A>
void Alert(const A &...args) {
    Print(string(u"ALERT: "), args...);
}
template <class... A>
void Comment(const A &...) {}

// ---------------------------------------------------------------- math
inline double MathAbs(double v) { return std::fabs(v); }
inline double MathMax(double a, double b) { return a > b ? a : b; }
inline double MathMin(double a, double b) { return a < b ? a : b; }
inline double MathPow(double a, double b) { return std::pow(a, b); }
inline double MathFloor(double v) { return std::floor(v); }
inline double MathCeil(double v) { return std::ceil(v); }
inline double MathRound(double v) { return std::round(v); }
inline double MathSqrt(double v) { return std::sqrt(v); }
inline double MathLog(double v) { return std::log(v); }
inline double MathLog10(double v) { return std::log10(v); }
inline double MathMod(double a, double b) { return std::fmod(a, b); }
inline bool MathIsValidNumber(double v) { return std::isfinite(v); }
inline double NormalizeDouble(double v, int digits) {
    if (digits < 0) digits = 0;
    if (digits > 8) digits = 8;
    double p = std::pow(10.0, digits);
    return std::round(v * p) / p;
}
// MathRand: a 15-bit linear congruential generator seeded with 1 until MathSrand is called.
inline uint &rand_state() {
    static uint s = 1;
    return s;
}
inline void MathSrand(uint seed) { rand_state() = seed; }
inline int MathRand() {
    rand_state() = rand_state() * 214013u + 2531011u;
    return int((rand_state() >> 16) & 0x7FFF);
}

// ---------------------------------------------------------------- time
inline std::chrono::steady_clock::time_point &start_time() {
    static std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
    return t;
}
inline ulong GetMicrosecondCount() {
    return ulong(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_time()).count());
}
inline uint GetTickCount() {
    return uint(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}
inline ulong GetTickCount64() {
    return ulong(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}
inline datetime TimeGMT() { return datetime(std::time(nullptr)); }
inline datetime TimeLocal() { return datetime(std::time(nullptr)); }
// The simulated trade server keeps UTC time, shifted by MQL_SERVER_UTC_OFFSET seconds (default 0) to
// model a broker whose server clock is not UTC (most are UTC+2/+3): the broker day rolls at its midnight.
inline long server_utc_offset() {
    static const long offset = [] {
        const char *v = std::getenv("MQL_SERVER_UTC_OFFSET");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    return offset;
}
inline datetime TimeCurrent() { return datetime(long(std::time(nullptr)) + server_utc_offset()); }
inline datetime TimeTradeServer() { return TimeCurrent(); }
inline void Sleep(int ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}
inline long now_unix_ms() {
    return long(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// ---------------------------------------------------------------- pointers
enum ENUM_POINTER_TYPE { POINTER_INVALID = 0, POINTER_DYNAMIC = 1, POINTER_AUTOMATIC = 2 };
template <class T>
T *GetPointer(T &obj) {
    return &obj;
}
// The harness cannot tell automatic from dynamic objects: any non-NULL pointer counts as dynamic.
template <class T>
ENUM_POINTER_TYPE CheckPointer(const T *p) {
    return p ? POINTER_DYNAMIC : POINTER_INVALID;
}
inline ENUM_POINTER_TYPE CheckPointer(std::nullptr_t) { return POINTER_INVALID; }

template <class T>
void ZeroMemory(T &v) {
    v = T();
}

// ---------------------------------------------------------------- crypto
enum ENUM_CRYPT_METHOD {
    CRYPT_BASE64 = 0,
    CRYPT_AES128 = 1,
    CRYPT_AES256 = 2,
    CRYPT_DES = 3,
    CRYPT_HASH_SHA1 = 4,
    CRYPT_HASH_SHA256 = 5,
    CRYPT_HASH_MD5 = 6,
    CRYPT_ARCH_ZIP = 7,
};
inline void set_bytes(Array<uchar> &dst, const unsigned char *p, size_t n) {
    dst.v.assign(p, p + n);
}
// Hashes and Base64 (no line breaks). Returns the bytes written, 0 on error.
inline int CryptEncode(ENUM_CRYPT_METHOD method, const Array<uchar> &data, const Array<uchar> &key, Array<uchar> &result) {
    (void)key;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const EVP_MD *alg = nullptr;
    switch (method) {
        case CRYPT_HASH_SHA1: alg = EVP_sha1(); break;
        case CRYPT_HASH_SHA256: alg = EVP_sha256(); break;
        case CRYPT_HASH_MD5: alg = EVP_md5(); break;
        case CRYPT_BASE64: {
            std::vector<unsigned char> out(4 * ((data.v.size() + 2) / 3) + 1);
            int n = EVP_EncodeBlock(out.data(), data.v.data(), int(data.v.size()));
            set_bytes(result, out.data(), size_t(n));
            return n;
        }
        default: set_err(ERR_INVALID_PARAMETER); return 0;
    }
    if (!EVP_Digest(data.v.data(), data.v.size(), md, &mdlen, alg, nullptr)) {
        set_err(ERR_INTERNAL_ERROR);
        return 0;
    }
    set_bytes(result, md, mdlen);
    return int(mdlen);
}
inline int CryptDecode(ENUM_CRYPT_METHOD method, const Array<uchar> &data, const Array<uchar> &key, Array<uchar> &result) {
    (void)key;
    if (method != CRYPT_BASE64) {
        set_err(ERR_INVALID_PARAMETER);
        return 0;
    }
    std::vector<unsigned char> out(3 * (data.v.size() / 4) + 3);
    int n = EVP_DecodeBlock(out.data(), data.v.data(), int(data.v.size()));
    if (n < 0) {
        set_err(ERR_INVALID_PARAMETER);
        return 0;
    }
    size_t pad = 0;
    for (size_t i = data.v.size(); i > 0 && data.v[i - 1] == '='; --i) ++pad;
    set_bytes(result, out.data(), size_t(n) - pad);
    return n - int(pad);
}

}  // namespace mql

#include "mql5rt_net.hpp"
#include "mql5rt_files.hpp"
#include "mql5rt_trade.hpp"
#include "mql5rt_events.hpp"
#include "mql5rt_input.hpp"
