// mql5rt_input.hpp - input variables (part of mql5rt.hpp). The terminal's input dialog is modelled by
// environment variables: MQL_INPUT_<Name> overrides the default of `input T Name = default;`.
#pragma once

namespace mql {

template <class T>
T input(const char16_t *name, T dflt) {
    std::string key = "MQL_INPUT_" + to_utf8(std::u16string(name));
    const char *v = std::getenv(key.c_str());
    if (!v) return dflt;
    std::string s = v;
    if constexpr (std::is_same<T, string>::value) {
        return from_std(s);
    } else if constexpr (std::is_same<T, bool>::value) {
        return s == "true" || s == "1";
    } else if constexpr (std::is_floating_point<T>::value) {
        return T(std::strtod(s.c_str(), nullptr));
    } else if constexpr (std::is_enum<T>::value) {
        return T(std::strtol(s.c_str(), nullptr, 10));
    } else {
        return T(std::strtoll(s.c_str(), nullptr, 10));
    }
}

}  // namespace mql
