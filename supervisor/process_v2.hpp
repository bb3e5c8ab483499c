#pragma once
// Boost.Process v2 as shipped in Boost 1.81 with BOOST_PROCESS_USE_STD_FS uses boost::optional
// and unqualified boost type traits without including them; include them first. Include this
// header instead of <boost/process/v2/...> directly.
#include <boost/optional.hpp>
#include <boost/type_traits.hpp>

#include <boost/process/v2/process.hpp>
