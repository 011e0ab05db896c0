// Result<T>: a value or a one-line error, for library code that must not
// throw across its API (the reader library, the CLI's building blocks).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace gometrics {

struct Error {
    std::string message;  // one line, says what and where
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T v) : v_(std::move(v)) {}
    Result(Error e) : v_(std::move(e)) {}

    explicit operator bool() const { return v_.index() == 0; }
    T& operator*() { return std::get<0>(v_); }
    const T& operator*() const { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

}  // namespace gometrics
